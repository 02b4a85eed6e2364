"""The GPU paths: the same model, the compiled cells, reduced precision, training, resuming and
torchrun (two GPUs) on CUDA, each held against what the CPU (or float32) computes.

CI has no GPU, so these are skipped there; `benchmarks/gpu_check.sh` runs them on a machine with
one. `NEURALGPU_TEST_DEVICE=cpu` runs them on the CPU instead, as a dry run of the tests
themselves (every comparison is then CPU against CPU, so it proves nothing about a GPU).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuralgpu.bench import peak_memory_mb, results_json, run_bench
from neuralgpu.checkpoint import SNAPSHOT_NAME, load_snapshot
from neuralgpu.evaluate import eval_batch, evaluate, predict
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.precision import exact_float32
from neuralgpu.solver import load, pretrained_names
from neuralgpu.tasks import structured_suites

DEVICE = os.environ.get("NEURALGPU_TEST_DEVICE", "cuda")
ON_A_GPU = DEVICE.startswith("cuda")

pytestmark = pytest.mark.skipif(
    ON_A_GPU and not torch.cuda.is_available(),
    reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one; NEURALGPU_TEST_DEVICE=cpu dry-runs them)",
)

PAPER = {}  # ModelConfig's defaults are the paper's model
FAST = {"channels": 96, "height": 1, "kernel_height": 1, "layers_per_step": 1, "copies": 1, "diagonal_gates": True}


@pytest.mark.parametrize("options", [PAPER, FAST], ids=["paper", "fast"])
def test_the_model_computes_on_the_gpu_what_it_computes_on_the_cpu(options):
    torch.manual_seed(0)
    cpu = NeuralGPU(ModelConfig(dropout=0.0, **options))
    gpu = NeuralGPU(cpu.config).to(DEVICE)
    gpu.load_state_dict(cpu.state_dict())
    tokens = torch.randint(1, 13, (8, 41))
    outputs = []
    for model, device in ((cpu, "cpu"), (gpu, DEVICE)):
        model.zero_grad()
        with exact_float32():
            output = model(tokens.to(device))
            (output.logits.logsumexp(-1).mean() + output.saturation).backward()
        outputs.append((output.logits.detach().cpu(), {name: p.grad.cpu() for name, p in model.named_parameters()}))
    (cpu_logits, cpu_grads), (gpu_logits, gpu_grads) = outputs
    # Tolerance: cuDNN and oneDNN sum the convolutions' products in different orders, over 41 steps;
    # on the CPU float32 and float64 differed by at most 1e-6 of the largest logit or gradient.
    # Relative to the largest, since the paper's model starts with logits of ~1e-5.
    torch.testing.assert_close(gpu_logits, cpu_logits, rtol=1e-4, atol=1e-4 * float(cpu_logits.abs().max()))
    for name, grad in cpu_grads.items():
        torch.testing.assert_close(gpu_grads[name], grad, rtol=1e-3, atol=1e-4 * float(grad.abs().max()), msg=name)


def test_compiled_cells_on_the_gpu_match_the_eager_model():
    """Inductor's Triton kernels (its C++ ones on the CPU), forward and backward, at two widths."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = NeuralGPU(ModelConfig(channels=24, dropout=0.0, copies=2)).to(DEVICE).train()
    compiled = NeuralGPU(eager.config).to(DEVICE).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_cells()
    for width in (9, 41):
        tokens = torch.randint(1, 13, (16, width), device=DEVICE)
        results = []
        for model in (eager, compiled):
            model.zero_grad()
            with exact_float32():
                output = model(tokens)
                (output.logits.logsumexp(-1).mean() + output.saturation).backward()
            results.append((output.logits.detach(), {name: p.grad for name, p in model.named_parameters()}))
        (eager_logits, eager_grads), (fast_logits, fast_grads) = results
        # Tolerance: as on the CPU (test_bench), Inductor reorders float32 pointwise arithmetic.
        torch.testing.assert_close(fast_logits, eager_logits, rtol=1e-5, atol=1e-5)
        for name, grad in eager_grads.items():
            torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("name", pretrained_names())
def test_shipped_models_are_error_free_on_the_gpu_at_10x(name):
    solver = load(name, device=DEVICE)
    length = solver.task.scaled_length(solver.card["train_lengths"][1], 10)
    results = [evaluate(solver.model, solver.task, length, "random", 64)]
    results += [evaluate(solver.model, solver.task, length, suite, 8) for suite in structured_suites(solver.task)]
    failures = {result.suite: result.sequence_errors for result in results if result.sequence_errors}
    assert not failures, f"{name} on {DEVICE} at length {length}: sequence errors per suite {failures}"


@pytest.mark.parametrize("name", pretrained_names())
def test_tf32_and_bf16_leave_the_shipped_answers_unchanged(name, tf32_allowed):
    """What the reduced-precision paths would change: each shipped model's answers at 10x with
    TF32 allowed (PyTorch's default for cuDNN's convolutions, kept in training) and with bfloat16
    convolutions (--bf16), against full float32, on random inputs and every structured suite."""
    solver = load(name, device=DEVICE)
    model, task = solver.model, solver.task
    length = task.scaled_length(solver.card["train_lengths"][1], 10)
    batches = [eval_batch(task, length, "random", 32)] + [eval_batch(task, length, suite, 4) for suite in structured_suites(task)]
    inputs = np.concatenate([batch.inputs for batch in batches])
    mask = np.concatenate([batch.mask for batch in batches])
    exact = predict(model, inputs, mask)  # predict runs in full float32, whatever the switches say
    tokens, columns = torch.from_numpy(inputs).to(DEVICE), torch.from_numpy(mask).to(DEVICE)
    with torch.no_grad():  # the plain forward pass follows the switches: TF32 allowed (the fixture)
        tf32 = model.eval()(tokens, columns).logits.argmax(-1).cpu().numpy()
    model.bf16_convolutions()
    try:
        bf16 = predict(model, inputs, mask)
    finally:
        model.bf16_convolutions(False)
    assert (tf32 != exact)[mask].sum() == 0, f"{name}: TF32 changed {int((tf32 != exact)[mask].sum())} answer digits"
    assert (bf16 != exact)[mask].sum() == 0, f"{name}: bf16 changed {int((bf16 != exact)[mask].sum())} answer digits"


def train(arguments: list[str], cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "neuralgpu", "train", "--task", "copy", "--recipe", "tiny", "--device", DEVICE, *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd, check=False)


def test_training_on_the_gpu_stops_and_resumes_with_its_random_streams(tmp_path):
    run_dir = tmp_path / "run"
    first = train(["--max-steps", "40", "--run-dir", str(run_dir), "--set", "snapshot_every=20"], tmp_path)
    assert first.returncode == 0, first.stderr[-4000:]
    snapshot = load_snapshot(run_dir / SNAPSHOT_NAME)
    assert snapshot["step"] == 40
    assert bool(snapshot["cuda_rng"]) == ON_A_GPU  # the GPU's dropout stream travels with the run
    resumed = train(["--max-steps", "60", "--run-dir", str(run_dir), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "finished" and records[-1]["step"] == 60
    losses = [record["loss"] for record in records if "loss" in record]
    assert losses and all(np.isfinite(losses))
    card = json.loads((run_dir / "model.json").read_text())
    assert card["steps"] == 60 and card["hardware"].startswith("cpu") != ON_A_GPU  # the GPU's name on a GPU


@pytest.mark.skipif(ON_A_GPU and torch.cuda.device_count() < 2, reason="NCCL's data parallelism needs two GPUs")
def test_torchrun_on_two_gpus_keeps_the_replicas_in_step(tmp_path):
    """NCCL, one GPU a rank (test_distributed runs the same on the CPU, over gloo)."""
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "neuralgpu", "train", "--task", "copy", "--recipe", "tiny", "--max-steps", "30",
        "--device", DEVICE, "--run-dir", str(run_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-8000:]
    finished = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert finished["event"] == "finished" and finished["step"] == 30
    assert finished["world_size"] == 2 and finished["ranks_in_sync"] is True


def test_checkpointed_training_memory_grows_linearly_on_the_gpu():
    """Kept whole, a training step's activations grow as n^2 (n steps of an n-wide state): x6.1 from
    41 to 101 columns. Checkpointed, about linearly: x4.0 from 101 to 401 (n^1.5 would be x7.9).
    On the CPU (README, Memory) these were x5.8 and x4.2."""
    device = torch.device(DEVICE)
    plain = [peak_memory_mb(ModelConfig(), "badd", length, 32, device, reference=False) for length in (41, 101)]
    assert plain[1] / plain[0] > 4, f"plain peak {plain[0]:.1f} MB at 41, {plain[1]:.1f} MB at 101"
    config = ModelConfig(checkpoint_steps=True)
    checkpointed = [peak_memory_mb(config, "badd", length, 32, device, reference=False) for length in (101, 401)]
    assert checkpointed[1] / checkpointed[0] < 6, (
        f"checkpointed peak {checkpointed[0]:.1f} MB at 101, {checkpointed[1]:.1f} MB at 401"
    )


def test_bench_on_the_gpu_times_ours_against_the_reference():
    results = run_bench("paper", "badd", length=41, batch=32, device=DEVICE, repeats=2)
    figures = results_json(results)
    assert figures["device"].startswith(DEVICE) and figures["train_step_ms"] > 0 and figures["infer_ms"] > 0
    assert figures["peak_mem_mb"] > 0 and figures["reference"]["train_step_ms"] > 0
    assert figures["train_speedup"] > 0 and figures["infer_speedup"] > 0
