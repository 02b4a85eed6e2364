"""Argument types and the one error every subcommand may raise: parsed early, reported in one line."""

from __future__ import annotations

import argparse
import os
import shutil

EXIT_USAGE = 2
EXIT_BAD_INPUT = 1
MAX_SHOWN_SYMBOLS = 10_000_000  # `tasks --show` prints what it generates: keep that readable


class CommandError(Exception):
    """An expected failure: printed as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def gpu_memory_message(error: BaseException) -> str:
    """What to say of a CUDA out-of-memory error: the first line of torch's, and what to do."""
    first_line = str(error).splitlines()[0] if str(error) else "out of memory"
    return (
        f"the GPU ran out of memory ({first_line}); use shorter inputs or a smaller batch, "
        "free the GPU of other work, or run with --device cpu"
    )


def whole_number_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a number >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number_at_least(text, 0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def decay(text: str) -> float:
    """A moving average's decay: 0 (none) or a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a decay such as 0.999, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a decay in [0, 1), such as 0.999, got {text!r}")
    return value


def length_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",") if part.strip()] or [positive_int("")]


def index_list(text: str) -> tuple[int, ...]:
    """Distinct indices from 0, in the order given: 36,66,201."""
    indices = tuple(dict.fromkeys(non_negative_int(part) for part in text.split(",") if part.strip()))
    return indices or (non_negative_int(""),)


def task_list(text: str) -> tuple[str, ...]:
    from neuralgpu.tasks import task_names

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in task_names()]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected comma-separated task names from: {', '.join(task_names())}; got {text!r}")
    return names


def device_choice(text: str) -> str:
    if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu or cuda, got {text!r}")
    return text


def resolve_device_name(name: str) -> str:
    from neuralgpu.train_config import resolve_device

    return str(resolve_device(name))


def refuse_compile_without_a_compiler(args: argparse.Namespace) -> None:
    """torch.compile builds C++ kernels on a CPU; without a compiler it fails deep inside the first step."""
    from neuralgpu.train_config import resolve_device

    if not args.compile or resolve_device(args.device).type != "cpu":
        return
    if not any(shutil.which(name) for name in (os.environ.get("CXX", "g++"), "g++", "clang++", "c++")):
        raise CommandError(
            "--compile on a CPU needs a C++ compiler (g++ or clang++ on PATH, or CXX): install one, or drop --compile"
        )
