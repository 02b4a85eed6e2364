"""Shared fixtures: one tiny trained model for the whole session (training it is the slow part)."""

from pathlib import Path

import pytest

from neuralgpu.recipes import build_config
from neuralgpu.train import Trainer

TINY_TASK = "copy"
TINY_SEED = 0


@pytest.fixture(scope="session")
def trained_copy(tmp_path_factory) -> tuple[Path, Trainer]:
    """A `copy` model really trained on CPU with the tiny recipe until solved (or 2,000 steps)."""
    run_dir = tmp_path_factory.mktemp("copy-run")
    trainer = Trainer(build_config(TINY_TASK, "tiny", seed=TINY_SEED, max_steps=2000), run_dir, progress=False)
    trainer.run()
    return run_dir, trainer
