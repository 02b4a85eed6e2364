"""``--set FIELD=VALUE``: change any field of a recipe's TrainConfig from the command line.

A recipe names a whole configuration; an experiment usually changes one thing in it
(``--set model.candidate_dropout=0.5``). Fields are addressed by their dotted path through the
nested config dataclasses, and values are parsed by the field's declared type, so a typo or a
value of the wrong kind is refused before anything trains. ``differences`` goes the other way:
the ``--set`` words that turn a recipe into a given config, so a run's recorded command
reproduces it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(text: str, kind: Any, path: str) -> Any:
    """``text`` as a value of the annotation ``kind`` (bool, int, float, str, Literal, X | None, tuple[X, ...])."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() == "none" and type(None) in arguments:
            return None
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _parse(text, inner, path)
    if origin is typing.Literal:
        if text not in arguments:
            raise ValueError(f"--set {path}: expected one of {', '.join(map(str, arguments))}, got {text!r}")
        return text
    if origin is tuple:
        return tuple(_parse(part.strip(), arguments[0], path) for part in text.split(",") if part.strip())
    if kind is bool:
        if text.strip().lower() not in _TRUE + _FALSE:
            raise ValueError(f"--set {path}: expected true or false, got {text!r}")
        return text.strip().lower() in _TRUE
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"--set {path}: expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    if kind is str:
        return text
    raise ValueError(f"--set {path}: fields of type {kind} cannot be set from the command line")


def _apply(config: Any, settings: list[tuple[str, str]], prefix: str) -> Any:
    """``config`` with every (dotted path, text) of ``settings`` below it set, one ``replace`` per
    dataclass, so fields that are only valid together (``curriculum.mode=bins`` with
    ``curriculum.bins=...``) can be changed together."""
    known = {field.name for field in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    nested: dict[str, list[tuple[str, str]]] = {}
    for path, text in settings:
        name, _, rest = path.partition(".")
        full = prefix + path
        if name not in known:
            raise ValueError(f"--set {full}: {type(config).__name__} has no field {name!r}; it has {', '.join(sorted(known))}")
        current = getattr(config, name)
        if rest:
            if not dataclasses.is_dataclass(current):
                raise ValueError(f"--set {full}: {prefix + name!r} is a value, not a group of fields")
            nested.setdefault(name, []).append((rest, text))
        elif dataclasses.is_dataclass(current):
            fields = ", ".join(f"{prefix}{name}.{field.name}" for field in dataclasses.fields(current))
            raise ValueError(f"--set {full}: {prefix + name!r} is a group of fields; set one of {fields}")
        else:
            changes[name] = _parse(text, _field_types(type(config))[name], full)
    for name, below in nested.items():
        changes[name] = _apply(getattr(config, name), below, prefix + name + ".")
    return dataclasses.replace(config, **changes)


def apply_settings(config: Any, settings: list[str]) -> Any:
    """Every ``FIELD=VALUE`` of ``settings`` applied (a later one of the same field wins); the
    config's own checks then run on the result."""
    parsed = []
    for setting in settings:
        path, equals, text = setting.partition("=")
        if not equals or not path.strip():
            raise ValueError(f"--set expects FIELD=VALUE (such as model.candidate_dropout=0.5), got {setting!r}")
        parsed.append((path.strip(), text.strip()))
    return _apply(config, parsed, "") if parsed else config


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_format(part) for part in value)
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def differences(config: Any, base: Any, skip: frozenset[str] = frozenset(), prefix: str = "") -> list[str]:
    """The ``FIELD=VALUE`` settings that turn ``base`` into ``config`` (fields named in ``skip`` left out)."""
    words = []
    for field in dataclasses.fields(config):
        path = prefix + field.name
        value, original = getattr(config, field.name), getattr(base, field.name)
        if path in skip or value == original:
            continue
        if dataclasses.is_dataclass(value):
            words += differences(value, original, skip, path + ".")
        else:
            words.append(f"{path}={_format(value)}")
    return words
