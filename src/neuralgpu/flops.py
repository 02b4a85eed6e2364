"""How much arithmetic a forward pass is, and how fast this device does dense arithmetic.

Together they say how much of the machine inference uses: achieved FLOP/s (the model's count over
the measured time) against the rate of a large dense matrix product on the same device, in the
precision the model's convolutions run in.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from neuralgpu.model import ModelConfig


def inference_flops(config: ModelConfig, batch: int, width: int) -> int:
    """Floating-point operations of one forward pass (a multiply-add counts two), as
    ``torch.utils.flop_counter`` counts them: the convolutions of every CGRU of every step, and the
    two matrix products that embed the input and read out the logits. Pointwise work is not counted.
    """
    m, cells = config.channels, batch * config.height * width
    kernel = config.kernel_height * config.kernel_width
    # Per CGRU: the gate convolution (2m outputs) and the candidate convolution (m outputs), each
    # output a sum over m channels times the kernel, at every cell of the (h, n) state.
    per_cgru = 2 * cells * 3 * m * m * kernel
    embed_and_read_out = 2 * batch * width * m * (m + config.vocab_size)
    return width * config.layers_per_step * per_cgru + embed_and_read_out


def synchronize(device: torch.device) -> None:
    """Wait for the device, so that a timer read next has seen its work finish."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(run, device: torch.device, repeats: int) -> float:
    run()  # warm-up: library load, autotuning
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def dense_matmul_tflops(device: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """Measured TFLOP/s of a square float32 matrix product: the faster of the BLAS product and the
    same product as a 1x1 convolution (oneDNN or cuDNN, the library the model's convolutions use;
    on an AMD CPU oneDNN's was ~1.6x MKL's). Each the median of ``repeats``.

    On CUDA the product may use TF32 exactly when cuDNN's convolutions may (PyTorch lets them by
    default), so the rate is the one the model's convolutions could reach.
    """
    size = size or (8192 if device.type == "cuda" else 1024)  # 1024: within a CPU core's caches
    left, right = (torch.randn(size, size, device=device) for _ in range(2))
    # The same product as a convolution: size input channels at size pixels, size filters.
    side = math.isqrt(size)
    image = left[: side * side].T.reshape(1, size, side, side).contiguous(memory_format=torch.channels_last)
    filters = right.reshape(size, size, 1, 1).contiguous(memory_format=torch.channels_last)
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        matmul_seconds = _median_seconds(lambda: left @ right, device, repeats)
        conv_seconds = _median_seconds(lambda: F.conv2d(image, filters), device, repeats) * size / (side * side)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    return 2 * size**3 / min(matmul_seconds, conv_seconds) / 1e12
