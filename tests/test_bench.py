"""The fast path computes what the plain eager reference computes; the benchmark reports it."""

import json

import pytest
import torch
from torch._dynamo.utils import counters
from torch.utils.flop_counter import FlopCounterMode

from neuralgpu.bench import dense_matmul_tflops, interleaved_medians, run_bench
from neuralgpu.cli import main
from neuralgpu.flops import inference_flops
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.recipes import build_config
from neuralgpu.reference import reference_forward


@pytest.mark.parametrize(
    "options",
    [{}, {"gate": "hard", "diagonal_gates": True}, {"height": 1, "kernel_height": 1, "layers_per_step": 1, "copies": 1}],
)
def test_model_matches_the_eager_reference(options):
    torch.manual_seed(0)
    model = NeuralGPU(ModelConfig(**options)).eval()
    tokens = torch.randint(0, 13, (8, 23))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 19:] = False
    # Tolerance: float32 summation order differs between one fused and two separate convolutions.
    torch.testing.assert_close(model(tokens, mask).logits, reference_forward(model, tokens, mask), rtol=1e-4, atol=1e-4)


def test_checkpointed_training_forward_matches_with_dropout():
    torch.manual_seed(0)
    plain = NeuralGPU(ModelConfig(channels=8)).train()
    checkpointed = NeuralGPU(ModelConfig(channels=8, checkpoint_steps=True)).train()
    checkpointed.load_state_dict(plain.state_dict())
    tokens = torch.randint(1, 13, (4, 17))
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(5)  # the same dropout masks, also when steps are recomputed in backward
        output = model(tokens).logits
        output.logsumexp(-1).mean().backward()
        grads.append(model.gate_weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "options", [{"copies": 2}, {"gate": "hard", "diagonal_gates": True, "height": 1, "kernel_height": 1, "layers_per_step": 1}]
)
def test_compiled_cells_match_the_eager_model_in_training(options):
    torch._dynamo.reset()  # forget kernels compiled by other tests: this one counts its own
    graphs_before = counters["stats"]["unique_graphs"]
    torch.manual_seed(0)
    eager = NeuralGPU(ModelConfig(channels=12, **options)).train()
    compiled = NeuralGPU(eager.config).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_cells()
    for width in (9, 14):  # a second width: the recompiled, dynamic-width kernels must agree too
        tokens = torch.randint(1, 13, (3, width))
        results = []
        for model in (eager, compiled):
            model.zero_grad()
            torch.manual_seed(5)  # the same dropout masks: dropout stays outside the compiled cell
            output = model(tokens)
            (output.logits.logsumexp(-1).mean() + output.saturation).backward()
            results.append((output.logits.detach(), output.saturation.detach(), {n: p.grad for n, p in model.named_parameters()}))
        (eager_logits, eager_saturation, eager_grads), (fast_logits, fast_saturation, fast_grads) = results
        # Tolerance: Inductor fuses and reorders float32 pointwise arithmetic; nothing else differs.
        torch.testing.assert_close(fast_logits, eager_logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast_saturation, eager_saturation, rtol=1e-5, atol=1e-6)
        for name, grad in eager_grads.items():
            torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    assert compiled.cell is not eager.cell
    # One kernel for both widths: before channels-last was forced, every new width recompiled.
    assert counters["stats"]["unique_graphs"] - graphs_before == 1


def test_bench_reports_both_implementations(capsys):
    results = run_bench("tiny", "copy", length=6, batch=4, device="cpu", repeats=1, memory=False)
    assert [result.implementation for result in results] == ["neuralgpu", "eager reference"]
    assert all(result.train_step_ms > 0 and result.infer_ms > 0 for result in results)
    assert main(["bench", "--recipe", "tiny", "--task", "copy", "--length", "6", "--batch", "4", "--repeats", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {"train_step_ms", "infer_ms", "peak_mem_mb", "device", "length", "batch", "train_speedup"} <= set(record)
    assert record["peak_mem_mb"] > 0 and record["reference"]["peak_mem_mb"] > 0


@pytest.mark.parametrize(
    "options", [{}, {"channels": 96, "height": 1, "kernel_height": 1, "layers_per_step": 1, "copies": 1, "diagonal_gates": True}]
)
def test_inference_flops_are_what_torch_counts(options):
    config = ModelConfig(**options)
    model = NeuralGPU(config).eval()
    tokens = torch.randint(1, 13, (3, 11))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(tokens)
    assert inference_flops(config, batch=3, width=11) == counter.get_total_flops() > 0


def test_bench_sets_long_inference_against_the_dense_rate(capsys):
    argv = ["bench", "--recipe", "tiny", "--task", "copy", "--length", "6", "--batch", "4", "--repeats", "1", "--no-reference"]
    assert main([*argv, "--infer-length", "15", "--infer-batch", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["length"], record["batch"], record["infer_length"], record["infer_batch"]) == (6, 4, 15, 2)
    config = build_config("copy", "tiny").model
    assert record["infer_tflops"] == pytest.approx(
        inference_flops(config, batch=2, width=15) / record["infer_ms"] / 1e9, rel=0.01
    )
    assert record["dense_tflops"] > 0
    assert record["infer_dense_share"] == pytest.approx(record["infer_tflops"] / record["dense_tflops"])
    assert main([*argv, "--infer-length", "15"]) == 0
    table = capsys.readouterr().out
    assert "inference ran at length 15, batch 4" in table and "TFLOP/s" in table


def test_dense_rate_is_a_positive_measurement():
    assert 0 < dense_matmul_tflops(torch.device("cpu"), size=128, repeats=2) < 100


def test_bench_times_the_compiled_model_beside_the_others(capsys):
    argv = [
        "bench",
        "--recipe",
        "tiny",
        "--task",
        "copy",
        "--length",
        "6",
        "--batch",
        "4",
        "--repeats",
        "1",
        "--compile",
        "--json",
    ]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["compiled"]["implementation"] == "neuralgpu compiled"
    assert record["compiled"]["train_step_ms"] > 0 and record["compiled_train_speedup"] > 0
    assert record["reference"]["implementation"] == "eager reference"


def test_bench_times_bf16_convolutions_beside_the_others(capsys):
    argv = ["bench", "--recipe", "tiny", "--task", "copy", "--length", "6", "--batch", "4", "--repeats", "1"]
    assert main([*argv, "--bf16", "--compile", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["bf16"]["implementation"] == "neuralgpu bf16"
    assert record["compiled_bf16"]["implementation"] == "neuralgpu compiled bf16"
    for key in ("bf16", "compiled_bf16", "compiled"):
        assert record[f"{key}_train_speedup"] == pytest.approx(
            record["reference"]["train_step_ms"] / record[key]["train_step_ms"]
        )
    assert main([*argv, "--bf16", "--no-reference"]) == 0
    table = capsys.readouterr().out
    assert "neuralgpu bf16" in table and "compiled" not in table and "speed-up" not in table


def test_implementations_are_timed_in_turns():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("ours", "reference")}
    medians = interleaved_medians(runs, torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["ours", "reference"] + ["ours", "reference"] * 3  # warm-up, then one of each per turn
    assert set(medians) == {"ours", "reference"} and all(ms >= 0 for ms in medians.values())
