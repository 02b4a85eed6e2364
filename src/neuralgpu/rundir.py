"""The run directory a person reads: config.json, metrics.jsonl and TensorBoard events.

Only the writer (rank 0 under torchrun) creates one. ``metrics.jsonl`` holds one JSON object per
log line and is appended to, so a resumed run continues the same file.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def git_revision() -> str | None:
    """The source tree's commit, when the package runs from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def environment() -> dict[str, Any]:
    from neuralgpu import __version__

    return {
        "neuralgpu": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_revision": git_revision(),
        "argv": sys.argv,
    }


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop log lines written after ``step``: a resumed run redoes those steps and logs them anew."""
    kept = [record for record in read_metrics(run_dir) if int(record.get("step", 0)) <= step]
    text = "".join(json.dumps(record) + "\n" for record in kept)
    path = run_dir / METRICS_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


class RunWriter:
    """Appends metrics to metrics.jsonl and TensorBoard (when the tensorboard extra is installed)."""

    def __init__(self, run_dir: Path, config: dict[str, Any], resumed_at: int | None = None) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        resumed = resumed_at is not None
        if resumed:
            truncate_metrics(run_dir, resumed_at)
        record = {**config, "environment": environment()}
        if resumed and (run_dir / CONFIG_NAME).exists():
            previous = json.loads((run_dir / CONFIG_NAME).read_text())
            record["resumes"] = previous.get("resumes", []) + [record["environment"]]
            record["environment"] = previous.get("environment", record["environment"])
        (run_dir / CONFIG_NAME).write_text(json.dumps(record, indent=2, default=str) + "\n")
        self.metrics = (run_dir / METRICS_NAME).open("a")
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is missing: metrics.jsonl still has everything
            return
        self.tensorboard = SummaryWriter(str(run_dir / TENSORBOARD_DIR))

    def log(self, record: dict[str, Any]) -> None:
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tensorboard is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
