"""Full float32 for answers and verifications on a GPU.

PyTorch lets cuDNN run float32 convolutions on tensor cores in TF32 by default (a 10-bit
mantissa: ~1e-3 relative error a product, against float32's ~1e-7). Training tolerates that, and
is faster for it. An answer, a check or a card's evaluation should not depend on it: the shipped
models were verified in float32 on a CPU, and a verification recorded from a GPU must mean the
same thing. So everything that judges or answers runs inside ``exact_float32()``. Whether TF32
would change the shipped models' answers anyway is measured on a GPU (tests/test_gpu.py), not
assumed. On a CPU the flags are read by nothing: this changes no computation there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Inside: float32 convolutions and matrix products really in float32 (no TF32) on CUDA."""
    convolutions, products = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = convolutions, products
