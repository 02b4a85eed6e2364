"""Starting a run from trained weights (--init-from): fine-tuning, or carrying a model to a related task."""

import json
import shutil
from dataclasses import replace

import pytest
import torch

from neuralgpu.checkpoint import RELEASE_NAME, CheckpointError, load_release
from neuralgpu.cli import main
from neuralgpu.evaluate import evaluate
from neuralgpu.recipes import build_config
from neuralgpu.tasks import get_task
from neuralgpu.train import Trainer


def test_a_run_from_a_trained_model_starts_with_its_weights_and_its_answers(trained_copy, tmp_path):
    source, _ = trained_copy
    released, _ = load_release(source / RELEASE_NAME)
    config = build_config("copy", "tiny", seed=5, max_steps=30, device="cpu")
    torch.manual_seed(99)
    fresh = Trainer(config, None, progress=False)
    fresh_draw = torch.rand(3)
    torch.manual_seed(99)
    tuned = Trainer(replace(config, init_from=str(source)), tmp_path / "tuned", progress=False)
    # Loading the source builds a model, which draws weights: the run's own random streams must not see it.
    assert torch.equal(torch.rand(3), fresh_draw)
    for name, tensor in released.state_dict().items():
        assert torch.equal(tuned.model.state_dict()[name], tensor), name
    top = config.curriculum.max_length
    task = get_task("copy")
    assert evaluate(tuned.model, task, top, "random", 128).sequence_errors == 0
    assert evaluate(fresh.model, task, top, "random", 128).sequence_errors > 0  # so the line above can fail
    assert not tuned.optimizer.state  # the optimizer starts afresh

    tuned.run()
    card = json.loads((tmp_path / "tuned" / "model.json").read_text())
    source_card = json.loads((source / "model.json").read_text())
    assert card["initial_model"] == {
        "from": str(source),
        "task": "copy",
        "recipe": "tiny",
        "seed": 2,
        "steps": source_card["steps"],
        "command": source_card["command"],  # the chain can be repeated from this card alone
    }
    assert card["initial_model"]["steps"] > 0
    assert f"--init-from {source}" in card["command"] and card["train_config"]["init_from"] == str(source)


def test_a_run_from_another_runs_snapshot_records_the_command_that_trained_it(trained_copy, tmp_path):
    """A snapshot has no card of its own: the command comes from its run's config, as that run's card would say it."""
    source, trainer = trained_copy
    snapshot_only = tmp_path / "source"
    snapshot_only.mkdir()
    for name in ("config.json", "snapshot.pt"):
        shutil.copy(source / name, snapshot_only / name)
    config = build_config("copy", "tiny", seed=5, max_steps=1, init_from=str(snapshot_only), device="cpu")
    initial = Trainer(config, None, progress=False).initial_model
    assert initial["snapshot_step"] == trainer.step and initial["seed"] == 2
    assert initial["command"] == trainer.command() == "neuralgpu train --task copy --recipe tiny --seed 2 --max-steps 2000"


def test_a_model_of_another_architecture_is_refused_naming_what_differs(trained_copy):
    source, _ = trained_copy
    with pytest.raises(CheckpointError, match=r"differs from this run's in channels 16 vs 96, height 2 vs 1"):
        Trainer(build_config("copy", "fast", init_from=str(source), device="cpu"), None, progress=False)
    # Regularisation is not architecture: a tiny model with another dropout still starts from it.
    config = build_config("copy", "tiny", init_from=str(source), device="cpu")
    config = replace(config, model=replace(config.model, dropout=0.0, candidate_dropout=0.1))
    assert Trainer(config, None, progress=False).initial_model["task"] == "copy"


def test_train_and_sweep_pass_init_from_on(train_configs, monkeypatch, tmp_path):
    assert main(["train", "--task", "add", "--init-from", "badd", "--run-dir", str(tmp_path / "run")]) == 0
    assert train_configs[-1].init_from == "badd"

    import neuralgpu.sweep

    seen = {}

    def record(task, recipe, seeds, out, parallel, train_args, gpus, threads):
        seen["train_args"] = train_args
        return 0  # none failed; none started either

    monkeypatch.setattr(neuralgpu.sweep, "run_sweep", record)
    main(["sweep", "--task", "qadd", "--seeds", "0", "--init-from", "badd", "--device", "cpu", "--out", str(tmp_path / "s")])
    args = seen["train_args"]
    assert args[args.index("--init-from") + 1] == "badd"


def test_a_missing_initial_model_is_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--task", "copy", "--recipe", "tiny", "--init-from", "nosuch", "--run-dir", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("neuralgpu train: no model called 'nosuch'") and "\n" not in error
    assert not run_dir.exists()
