"""--set FIELD=VALUE: any config field from the command line, and the recorded command that repeats it."""

import re
import shlex
from dataclasses import replace

import pytest

from neuralgpu.cli import main
from neuralgpu.cli.parser import build_parser
from neuralgpu.cli.training import train_config_from_args
from neuralgpu.recipes import build_config
from neuralgpu.settings import apply_settings, differences
from neuralgpu.train import Trainer


def test_settings_reach_nested_fields_by_their_type_and_differences_undo_them():
    fast = build_config("badd", "fast")
    changed = apply_settings(
        fast,
        [
            "model.candidate_dropout=0.5",
            "model.update_bias=0.7",
            "model.diagonal_gates=false",
            "curriculum.mode=bins",
            "curriculum.bins=8,12,41",
            "hard_share=0.2",
            "beta2_schedule=dngpu",
            "reach_factor=80",
        ],
    )
    assert changed.model.candidate_dropout == 0.5 and changed.model.update_bias == 0.7 and not changed.model.diagonal_gates
    assert changed.curriculum.bins == (8, 12, 41) and changed.hard_share == 0.2 and changed.reach_factor == 80
    assert apply_settings(changed, ["model.update_bias=none"]).model.update_bias is None
    assert apply_settings(fast, differences(changed, fast)) == changed
    assert differences(fast, fast) == []


@pytest.mark.parametrize(
    "setting,message",
    [
        ("model.nope=1", "ModelConfig has no field 'nope'"),
        ("model=3", "'model' is a group of fields"),
        ("lr.x=1", "'lr' is a value"),
        ("hard_share=lots", "expected a number"),
        ("batch_size=2.5", "expected a whole number"),
        ("model.diagonal_gates=maybe", "expected true or false"),
        ("beta2_schedule=sometimes", "expected one of constant, dngpu"),
        ("model.candidate_dropout=1.5", "candidate_dropout must be in [0, 1)"),
        ("lr", "expects FIELD=VALUE"),
    ],
)
def test_a_bad_setting_is_refused_with_what_is_wrong(setting, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_settings(build_config("badd", "fast"), [setting])


def test_train_takes_settings_and_a_bad_one_is_one_line(train_configs, tmp_path, capsys):
    args = ["train", "--task", "badd", "--set", "model.candidate_dropout=0.3", "--set", "hard_share=0.2"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    assert train_configs == [apply_settings(build_config("badd"), ["model.candidate_dropout=0.3", "hard_share=0.2"])]
    capsys.readouterr()
    assert main(["train", "--task", "badd", "--set", "model.dropuot=0.3", "--run-dir", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no field 'dropuot'" in error and len(train_configs) == 1


def test_the_recorded_command_rebuilds_the_config_it_trained():
    config = apply_settings(
        build_config("badd", "fast", seed=3, time_budget=900, ema_decay=0.999),
        ["model.candidate_dropout=0.25", "curriculum.max_length=21", "eval_every=50"],
    )
    command = Trainer(config, None, progress=False).command()
    assert "--set model.candidate_dropout=0.25" in command and "--ema 0.999" in command
    words = shlex.split(command)
    assert words[:2] == ["neuralgpu", "train"]
    rebuilt = train_config_from_args(build_parser().parse_args(words[1:]))
    assert replace(rebuilt, device=config.device) == config


def test_sweep_passes_every_setting_to_every_run_and_refuses_a_bad_one_once(monkeypatch, tmp_path, capsys):
    import neuralgpu.sweep

    seen = {}

    def record(task, recipe, seeds, out, parallel, train_args, gpus, threads):
        seen["train_args"] = train_args
        return 0

    monkeypatch.setattr(neuralgpu.sweep, "run_sweep", record)
    sweep = ["sweep", "--task", "copy", "--seeds", "0-1", "--device", "cpu", "--out", str(tmp_path)]
    main([*sweep, "--set", "model.candidate_dropout=0.1", "--set", "hard_share=0.3"])
    assert seen["train_args"][-4:] == ["--set", "model.candidate_dropout=0.1", "--set", "hard_share=0.3"]
    seen.clear()
    capsys.readouterr()
    assert main([*sweep, "--set", "hard_share=2"]) == 2
    assert "hard_share must be in [0, 1]" in capsys.readouterr().err and not seen


@pytest.mark.parametrize(
    ("task", "recipe"),
    [
        ("badd", "fast"),
        ("bmul", "fast-cdrop"),
        ("qadd", "fast-cdrop"),
        ("add", "fast-cdrop"),
        ("mul", "fast-cdrop"),
        ("duplicate", "fast-1d"),
        ("reverse", "fast"),
        ("kvsort", "fast"),
    ],
)
def test_a_command_without_a_recipe_trains_with_the_one_that_learned_the_task(task, recipe, train_configs, tmp_path, capsys):
    assert main(["train", "--task", task, "--run-dir", str(tmp_path / "run")]) == 0
    assert train_configs == [build_config(task, recipe)] and train_configs[0].recipe == recipe
    assert f"with recipe {recipe!r}" in capsys.readouterr().err
    assert main(["train", "--task", task, "--recipe", "paper", "--run-dir", str(tmp_path / "named")]) == 0
    assert train_configs[1].recipe == "paper"  # a named recipe is always the one trained
