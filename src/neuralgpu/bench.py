"""Speed and memory of a training step and of inference, ours beside the plain eager reference.

Ours may also be timed compiled (``--compile``) and with bfloat16 convolutions (``--bf16``).
All implementations run in the same process on the same parameters and inputs, so the ratio is
measured side by side. Times are medians over repeats after warm-up, the implementations timed in
turns; on CUDA every timing waits for the device. Inference may run at its own length and batch
(on a GPU the telling case is long and wide: length 4,001 at a large batch), and its achieved TFLOP/s is set
against this device's measured dense rate (``dense_matmul_tflops``). Peak memory is the CUDA allocator's peak on a
GPU, and on the CPU the growth of the peak resident set of a fresh child process that runs one
training step.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from neuralgpu.flops import inference_flops
from neuralgpu.memory import release_large_blocks
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.precision import exact_float32
from neuralgpu.recipes import build_config
from neuralgpu.reference import reference_forward
from neuralgpu.tasks import get_task
from neuralgpu.train_config import resolve_device

OURS, COMPILED, REFERENCE = "neuralgpu", "neuralgpu compiled", "eager reference"
BF16, COMPILED_BF16 = "neuralgpu bf16", "neuralgpu compiled bf16"


@dataclass(frozen=True)
class Variant:
    """One implementation timed: its name in the table and its key in ``results_json``."""

    name: str
    key: str
    reference: bool = False
    compiled: bool = False
    bf16: bool = False  # the CGRUs' convolutions in bfloat16 (NeuralGPU.bf16_convolutions)


def bench_variants(compiled: bool, bf16: bool, reference: bool) -> list[Variant]:
    """Ours first, then ours compiled and with bfloat16 convolutions when asked, the reference last."""
    variants = [Variant(OURS, "ours")]
    if compiled:
        variants.append(Variant(COMPILED, "compiled", compiled=True))
    if bf16:
        variants.append(Variant(BF16, "bf16", bf16=True))
    if compiled and bf16:
        variants.append(Variant(COMPILED_BF16, "compiled_bf16", compiled=True, bf16=True))
    if reference:
        variants.append(Variant(REFERENCE, "reference", reference=True))
    return variants


@dataclass(frozen=True)
class BenchResult:
    implementation: str
    device: str
    length: int
    batch: int
    train_step_ms: float
    infer_ms: float
    peak_mem_mb: float
    infer_length: int
    infer_batch: int
    infer_tflops: float  # the model's inference_flops over infer_ms


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    runs: dict[str, Callable[[], None]], device: torch.device, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median milliseconds of each run, timed in turns: repeat r times every run once, so a noisy
    neighbour on a shared machine slows all of them alike and their ratios hold."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    _synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            _synchronize(device)
            times[name].append((time.perf_counter() - started) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def dense_matmul_tflops(device: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """Measured TFLOP/s of a square float32 matrix product: the faster of the BLAS product and the
    same product as a 1x1 convolution (oneDNN or cuDNN, the library the model's convolutions use;
    on an AMD CPU oneDNN's was ~1.6x MKL's). Each the median of ``repeats``.

    In full float32 on CUDA too (no TF32): the arithmetic inference runs in (``_inference``, as
    ``neuralgpu eval`` does: ``precision.exact_float32``), so the share compares like with like.
    """
    size = size or (8192 if device.type == "cuda" else 1024)  # 1024: within a CPU core's caches
    left, right = (torch.randn(size, size, device=device) for _ in range(2))
    # The same product as a convolution: size input channels at size pixels, size filters.
    side = math.isqrt(size)
    image = left[: side * side].T.reshape(1, size, side, side).contiguous(memory_format=torch.channels_last)
    filters = right.reshape(size, size, 1, 1).contiguous(memory_format=torch.channels_last)
    runs = {"matmul": lambda: left @ right, "conv": lambda: F.conv2d(image, filters)}
    with exact_float32():
        ms = interleaved_medians(runs, device, repeats, warmup=1)  # warm-up: library load, autotuning
    fastest_ms = min(ms["matmul"], ms["conv"] * size / (side * side))
    return 2 * size**3 / (fastest_ms / 1e3) / 1e12


def _setup(
    config: ModelConfig,
    task: str,
    length: int,
    batch: int,
    device: torch.device,
    seed: int = 0,
    compiled: bool = False,
    bf16: bool = False,
):
    torch.manual_seed(seed)
    model = NeuralGPU(config).to(device)
    model.bf16_convolutions(bf16)
    if compiled:
        model.compile_cells()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    return model, optimizer, _tensors(task, length, batch, device, seed)


def _tensors(task: str, length: int, batch: int, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    """Inputs, targets and mask of a random batch; the model's width is the inputs' second dimension."""
    data = get_task(task).sample(batch, length, np.random.default_rng(seed))
    return [torch.from_numpy(array).to(device) for array in (data.inputs, data.targets, data.mask)]


def _train_step(model: NeuralGPU, optimizer: torch.optim.Optimizer, tensors, reference: bool) -> None:
    inputs, targets, mask = tensors
    model.train()
    logits = reference_forward(model, inputs, mask) if reference else model(inputs, mask).logits
    loss = F.cross_entropy(logits[mask], targets[mask])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def _inference(model: NeuralGPU, tensors, reference: bool) -> None:
    """Inference as ``neuralgpu eval`` runs it: in full float32 on a GPU too. (Training steps keep
    PyTorch's default, TF32 convolutions on a GPU, as ``neuralgpu train`` does.)"""
    inputs, _, mask = tensors
    model.eval()
    with torch.no_grad(), exact_float32():
        (reference_forward(model, inputs, mask) if reference else model(inputs, mask).logits).argmax(-1)


def _peak_resident_mb() -> float:
    """This process's peak resident set. /proc's VmHWM starts afresh at exec, unlike ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_peak_child(config: ModelConfig, task: str, length: int, batch: int, reference: bool, bf16: bool, queue) -> None:
    torch.set_num_threads(1)  # memory does not depend on threads; keep the child light
    if config.checkpoint_steps:
        release_large_blocks()  # as the trainer does
    model, optimizer, tensors = _setup(config, task, length, batch, torch.device("cpu"), bf16=bf16)
    before = _peak_resident_mb()
    _train_step(model, optimizer, tensors, reference)
    queue.put(_peak_resident_mb() - before)


def peak_memory_mb(
    config: ModelConfig,
    task: str,
    length: int,
    batch: int,
    device: torch.device,
    reference: bool,
    compiled: bool = False,
    bf16: bool = False,
) -> float:
    """Extra memory one training step needs beyond the model, optimizer and data.

    Not measured (nan) for the compiled model on a CPU: the resident set there would count the
    compiler's own memory, which the first step spends.
    """
    if device.type == "cuda":
        model, optimizer, tensors = _setup(config, task, length, batch, device, compiled=compiled, bf16=bf16)
        if compiled:
            _train_step(model, optimizer, tensors, reference)  # compile first: the peak is the step's
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _train_step(model, optimizer, tensors, reference)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if compiled:
        return float("nan")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_cpu_peak_child, args=(config, task, length, batch, reference, bf16, queue))
    child.start()
    child.join()
    return float(queue.get(timeout=5)) if child.exitcode == 0 else float("nan")


def run_bench(
    recipe: str = "paper",
    task: str = "badd",
    length: int = 41,
    batch: int = 32,
    device: str = "auto",
    repeats: int = 5,
    checkpoint_steps: bool = False,
    reference: bool = True,
    memory: bool = True,
    compiled: bool = False,
    infer_length: int | None = None,
    infer_batch: int | None = None,
    bf16: bool = False,
) -> list[BenchResult]:
    """Results for our model, our model compiled (if ``compiled``), with bfloat16 convolutions (if
    ``bf16``; both, if both) and the plain eager reference (unless ``reference`` is False), in that
    order (``bench_variants``); every one starts from the same weights.
    Training runs at ``length`` and ``batch``, inference at ``infer_length`` and ``infer_batch``
    (default: the same)."""
    torch_device = resolve_device(device)
    config = replace(build_config(task, recipe).model, checkpoint_steps=checkpoint_steps)
    variants = bench_variants(compiled, bf16, reference)
    infer_length, infer_batch = infer_length or length, infer_batch or batch
    infer_tensors = _tensors(task, infer_length, infer_batch, torch_device)
    train_runs, infer_runs = {}, {}
    for variant in variants:
        model, optimizer, tensors = _setup(
            config, task, length, batch, torch_device, compiled=variant.compiled, bf16=variant.bf16
        )
        train_runs[variant.name] = partial(_train_step, model, optimizer, tensors, variant.reference)
        infer_runs[variant.name] = partial(_inference, model, infer_tensors, variant.reference)
    train_ms = interleaved_medians(train_runs, torch_device, repeats)
    infer_ms = interleaved_medians(infer_runs, torch_device, repeats)
    flops = inference_flops(config, batch=infer_tensors[0].shape[0], width=infer_tensors[0].shape[1])
    results = []
    for variant in variants:
        peak = (
            peak_memory_mb(config, task, length, batch, torch_device, variant.reference, variant.compiled, variant.bf16)
            if memory
            else float("nan")
        )
        tflops = flops / (infer_ms[variant.name] / 1e3) / 1e12
        results.append(
            BenchResult(
                variant.name,
                str(torch_device),
                length,
                batch,
                round(train_ms[variant.name], 2),
                round(infer_ms[variant.name], 2),
                round(peak, 1),
                infer_length,
                infer_batch,
                tflops,
            )
        )
    return results


def format_bench(results: list[BenchResult], dense_tflops: float | None = None) -> str:
    """The table, the speed-ups over the reference, and inference's share of the dense rate."""
    header = f"{'implementation':<23} {'device':<7} {'length':>6} {'batch':>5} {'train step ms':>13} {'infer ms':>9} {'infer TFLOP/s':>13} {'peak MB':>8}"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.implementation:<23} {r.device:<7} {r.length:>6} {r.batch:>5} {r.train_step_ms:>13.1f} {r.infer_ms:>9.1f} "
            f"{r.infer_tflops:>13.4f} {r.peak_mem_mb:>8.1f}"
        )
    first = results[0]
    if (first.infer_length, first.infer_batch) != (first.length, first.batch):
        lines.append(f"inference ran at length {first.infer_length}, batch {first.infer_batch}")
    reference = _named(results, REFERENCE)
    for fast in results if reference is not None else []:
        if fast is not reference:
            lines.append(
                f"speed-up of {fast.implementation} over the eager reference: training x{reference.train_step_ms / fast.train_step_ms:.2f}, "
                f"inference x{reference.infer_ms / fast.infer_ms:.2f}"
            )
    if dense_tflops is not None:
        best = max(results, key=lambda r: r.infer_tflops)
        lines.append(
            f"dense float32 matrix product on this device: {dense_tflops:.4f} TFLOP/s; "
            f"inference ({best.implementation}) reached {best.infer_tflops / dense_tflops:.1%} of it"
        )
    return "\n".join(lines)


def _named(results: list[BenchResult], implementation: str) -> BenchResult | None:
    return next((r for r in results if r.implementation == implementation), None)


def results_json(results: list[BenchResult], dense_tflops: float | None = None) -> dict:
    """Our model's figures at the top level; each other implementation timed beside them under its
    key (``compiled``, ``bf16``, ``compiled_bf16``, ``reference``), with its speed-ups over the
    reference (``train_speedup`` for ours, ``compiled_train_speedup`` ...), and the device's dense
    rate with our inference's share of it when measured."""
    ours = asdict(results[0])
    if dense_tflops is not None:
        ours["dense_tflops"] = dense_tflops
        ours["infer_dense_share"] = results[0].infer_tflops / dense_tflops
    keys = {variant.name: variant.key for variant in bench_variants(compiled=True, bf16=True, reference=True)}
    for result in results[1:]:
        ours[keys[result.implementation]] = asdict(result)
    reference = _named(results, REFERENCE)
    for result in results if reference is not None else []:
        if result is not reference:
            prefix = "" if result is results[0] else f"{keys[result.implementation]}_"
            ours[f"{prefix}train_speedup"] = reference.train_step_ms / result.train_step_ms
            ours[f"{prefix}infer_speedup"] = reference.infer_ms / result.infer_ms
    return ours
