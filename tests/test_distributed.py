"""Scaling out: torchrun data-parallel training on CPU (gloo), and seed sweeps with their report."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuralgpu.distributed import Distributed
from neuralgpu.sweep import examples_seen, parse_seeds


def test_torchrun_two_ranks_stay_in_step_and_write_one_run_directory(tmp_path):
    run_dir = tmp_path / "ddp-run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "neuralgpu",
        "train",
        "--task",
        "copy",
        "--recipe",
        "tiny",
        "--max-steps",
        "60",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False)
    # A worker's own message (e.g. a C++ abort) comes before torchrun's long summary: show both.
    assert result.returncode == 0, result.stderr[-8000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ddp-run"]  # rank 1 wrote nothing of its own
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records if "train_seq_error" in record]
    assert steps == sorted(set(steps)), "one writer: no step logged twice"
    finished = records[-1]
    # The trainer compares every rank's parameters with rank 0's, bit for bit, after the last update.
    assert finished["event"] == "finished" and finished["step"] == 60 and finished["ranks_in_sync"] is True
    assert json.loads((run_dir / "model.json").read_text())["world_size"] == 2
    assert result.stdout.count("after 60 steps") == 1  # only rank 0 reports


def _compare_after_perturbing(rank: int, init_file: str, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    context = Distributed(rank=rank, world_size=2)
    same = context.parameters_agree(model, torch.device("cpu"))
    if rank == 1:
        with torch.no_grad():
            model.bias[0] += 1e-6
    different = context.parameters_agree(model, torch.device("cpu"))
    Path(results, f"rank{rank}").write_text(json.dumps([same, different]))
    dist.destroy_process_group()


def test_the_sync_check_notices_a_replica_that_drifted(tmp_path):
    mp.spawn(_compare_after_perturbing, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}").read_text()) == [True, False]


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("7,1,1,2-3") == [1, 2, 3, 7]
    for bad in ("", "3-1", "a-b", "-2", "1,x"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "neuralgpu", *args], capture_output=True, text=True, timeout=900, check=False)


def test_sweep_two_tiny_seeds_then_report(tmp_path):
    out = tmp_path / "sweep"
    result = run_cli(
        "sweep",
        "--task",
        "copy",
        "--recipe",
        "tiny",
        "--seeds",
        "0-1",
        "--parallel",
        "2",
        "--threads",  # two runs of two threads each, where the cores split evenly would give each one
        "2",
        "--max-steps",
        "400",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 2 and sorted(row["seed"] for row in summary["rows"]) == [0, 1]
    assert summary["solved"] == sum(row["solved"] for row in summary["rows"])
    for row in summary["rows"]:
        card = json.loads((out / f"seed-{row['seed']}" / "model.json").read_text())
        assert row["steps"] == card["steps"] and row["solved"] == card["solved"] and card["seed"] == row["seed"]
        assert card["hardware"] == "cpu (2 threads)"
        assert row["examples"] == card["steps"] * card["train_config"]["batch_size"]  # one batch a step, one rank
        assert row["random_error"]["12"] == next(e["sequence_error"] for e in card["evaluation"] if e["length"] == 12)
    assert (out / "summary.txt").read_text().strip() == result.stdout.strip()

    report = run_cli("report", str(out), "--json")
    assert report.returncode == 0 and json.loads(report.stdout) == summary

    # A second sweep over the same directory keeps the finished seeds instead of training them again.
    again = run_cli("sweep", "--task", "copy", "--recipe", "tiny", "--seeds", "0-1", "--device", "cpu", "--out", str(out))
    assert again.returncode == 0 and json.loads((out / "summary.json").read_text()) == summary


def test_report_names_unfinished_runs_and_still_reports_the_rest(tmp_path, trained_copy):
    finished, _ = trained_copy
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text('{"step": 1}\n')
    result = run_cli("report", str(finished), str(unfinished))
    assert result.returncode == 1
    assert "has not finished" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "solved 1/1" in result.stdout or "solved 0/1" in result.stdout


def test_a_report_of_two_sweeps_names_their_runs_apart(tmp_path, trained_copy):
    finished, _ = trained_copy
    for sweep in ("plain", "averaged"):
        shutil.copytree(finished, tmp_path / sweep / "seed-2")
    result = run_cli("report", str(tmp_path / "plain"), str(tmp_path / "averaged"))
    assert result.returncode == 0, result.stderr
    header, rule, *rows, headline = result.stdout.strip().splitlines()
    assert [row.split()[0] for row in rows] == ["averaged/seed-2", "plain/seed-2"]  # each sweep's runs together
    assert len({len(line) for line in (header, rule, *rows)}) == 1  # the columns stay aligned
    assert headline.split(";")[0] == f"solved {len(rows)}/{len(rows)}"  # the trained copy run is solved


def test_examples_seen_count_every_bin_and_rank():
    card = {
        "steps": 100,
        "world_size": 2,
        "train_config": {"batch_size": 32, "curriculum": {"mode": "bins", "bins": [8, 12, 41]}},
    }
    assert examples_seen(card) == 100 * 32 * 3 * 2
    card["train_config"]["curriculum"]["mode"] = "curriculum"
    assert examples_seen(card) == 100 * 32 * 2
