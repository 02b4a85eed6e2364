"""The two checkpoint kinds: release files (safetensors + JSON card) and resume snapshots.

A release file is self-contained: the model config and the card travel in the safetensors
metadata, and a readable ``.json`` copy of the card sits beside it. Loading one runs no pickle
code. A resume snapshot (optimizer, step, curriculum, RNG states) is a ``torch.save`` file loaded
with ``weights_only=True``. Both are written to a temporary file and renamed, so a kill during a
write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from neuralgpu.model import ModelConfig, NeuralGPU

FORMAT = "neuralgpu"
FORMAT_VERSION = 1
RELEASE_NAME = "model.safetensors"
# The weights of the check that got furthest so far (``Trainer._keep_best``), beside the release.
BEST_NAME = "best.safetensors"
SNAPSHOT_NAME = "snapshot.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it owner-only; a release is for sharing
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def first_line(error: BaseException) -> str:
    """An error's first line (or its type's name when it has none), for a one-line CheckpointError."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    known = {field.name for field in fields(ModelConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown model settings {sorted(unknown)}")
    return ModelConfig(**data)


def save_release(path: Path, model: NeuralGPU, card: dict[str, Any]) -> None:
    """Write ``path`` (safetensors) and its card ``path.with_suffix('.json')``."""
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    card = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_config": asdict(model.config), **card}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "card": json.dumps(card)}
    write_atomically(path, lambda target: save_file(tensors, str(target), metadata=metadata))
    text = json.dumps(card, indent=2) + "\n"
    write_atomically(path.with_suffix(".json"), lambda target: target.write_text(text))


def read_card(path: Path) -> dict[str, Any]:
    """The card stored inside a release file, checked for format and version."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error}); re-download or re-train it") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a neuralgpu release checkpoint (no neuralgpu metadata)")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint format version {metadata.get('format_version')} is not supported "
            f"(this neuralgpu reads version {FORMAT_VERSION})"
        )
    try:
        return json.loads(metadata["card"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: its card is missing or not valid JSON") from None


def load_release(path: Path, device: str | torch.device = "cpu") -> tuple[NeuralGPU, dict[str, Any]]:
    """A model and its card from a release file; every problem is a one-line CheckpointError."""
    card = read_card(path)
    try:
        config = model_config_from_dict(card["model_config"])
        model = NeuralGPU(config)
        model.load_state_dict(load_file(str(path), device="cpu"))
    except (KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{path}: weights do not match the recorded model ({first_line(error)})") from None
    return model.to(device).eval(), card


def save_snapshot(path: Path, state: dict[str, Any]) -> None:
    write_atomically(path, lambda target: torch.save(state, target))


def load_snapshot(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no resume snapshot here; start the run without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable resume snapshot ({first_line(error)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a neuralgpu resume snapshot")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: snapshot format version {state.get('format_version')} is not supported")
    return state
