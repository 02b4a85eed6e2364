"""Shared fixtures: one tiny trained model for the whole session (training it is the slow part)."""

from pathlib import Path

import pytest
import torch

from neuralgpu.recipes import build_config
from neuralgpu.train import Trainer

TINY_TASK = "copy"
TINY_SEED = 2  # solved at step 1,100 and clean on the frozen sets at 8x its training length, as test_train needs


@pytest.fixture(scope="session")
def trained_copy(tmp_path_factory) -> tuple[Path, Trainer]:
    """A `copy` model really trained on CPU with the tiny recipe until solved (or 2,000 steps)."""
    run_dir = tmp_path_factory.mktemp("copy-run")
    trainer = Trainer(build_config(TINY_TASK, "tiny", seed=TINY_SEED, max_steps=2000), run_dir, progress=False)
    # The trained weights depend on the thread count (it changes the order of float sums), and so
    # did whether the model was clean at 8x: one thread, so a machine trains the same model every
    # time. CPUs with other vector units still round differently (see test_train's first test).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    return run_dir, trainer


@pytest.fixture
def tf32_allowed():
    """PyTorch's TF32 switches on for the test, and back as they were after. Assigned, not
    monkeypatched: they are virtual attributes (torch.backends' __getattr__ and __setattr__), which
    pytest 9.2's monkeypatch takes for unset and tries to delete on undo (an error at teardown)."""
    cudnn, cublas = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, cublas.allow_tf32
    cudnn.allow_tf32 = cublas.allow_tf32 = True
    yield
    cudnn.allow_tf32, cublas.allow_tf32 = before


@pytest.fixture
def train_configs(monkeypatch) -> list:
    """The TrainConfigs `neuralgpu train` builds, recorded by a stand-in for the Trainer that trains nothing."""
    import neuralgpu.train

    seen = []

    class Recorder:
        def __init__(self, config, run_dir, resume, distributed):
            seen.append(config)

        def run(self):
            return neuralgpu.train.TrainResult(False, 0, 0.0, [], None)

    monkeypatch.setattr(neuralgpu.train, "Trainer", Recorder)
    return seen
