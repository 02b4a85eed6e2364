"""The ``neuralgpu`` command: thin subcommands that parse, call the library and print.

Every expected failure (bad input, unknown name, unreadable checkpoint, too long for memory, a
GPU out of memory) ends in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from neuralgpu.checkpoint import CheckpointError
from neuralgpu.cli.arguments import EXIT_USAGE, CommandError, gpu_memory_message
from neuralgpu.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `solve MODEL --json 1+1 10+1`: expressions after a flag arrive here, and everything after `--`.
    if getattr(args, "command", None) == "solve":
        before, after = (extra[: extra.index("--")], extra[extra.index("--") + 1 :]) if "--" in extra else (extra, [])
        args.expr += [item for item in before if not item.startswith("-")] + after
        extra = [item for item in before if item.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CommandError as error:
        print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
        return error.status
    except (CheckpointError, ValueError, MemoryError, OSError) as error:
        print(f"neuralgpu {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:
        if not out_of_gpu_memory(error):
            raise
        print(f"neuralgpu {args.command}: {gpu_memory_message(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"neuralgpu {args.command}: interrupted", file=sys.stderr)
        return 130


def out_of_gpu_memory(error: BaseException) -> bool:
    """torch's CUDA out-of-memory error (a RuntimeError), told apart without importing torch here."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)


if __name__ == "__main__":
    sys.exit(main())
