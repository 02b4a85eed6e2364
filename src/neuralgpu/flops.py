"""How much arithmetic a forward pass is: with a measured time, the FLOP/s inference achieves
(``bench`` sets it against the device's measured dense rate)."""

from __future__ import annotations

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
