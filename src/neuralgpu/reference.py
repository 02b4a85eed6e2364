"""A plain eager Neural GPU, written the straightforward way, for benchmarks and equivalence tests.

It computes what :class:`neuralgpu.model.NeuralGPU` computes, from the same parameters, but the
way a first implementation would: a Python loop over steps, and a separate convolution for each
of the reset gate, the update gate and the candidate. ``neuralgpu bench`` times it beside the
real model in the same run, and the tests check that both give the same outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from neuralgpu.model import NeuralGPU, dropout_rate, shift_for_diagonal_gates


def cutoff_sigmoid(x: Tensor, cutoff: float) -> Tensor:
    return torch.clamp(cutoff * torch.sigmoid(x) - (cutoff - 1.0) / 2.0, 0.0, 1.0)


def reference_forward(model: NeuralGPU, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """Logits (B, n, C) of ``model`` computed step by step with one convolution per gate."""
    config = model.config
    if mask is None:
        mask = tokens != 0
    m = config.channels
    padding = (config.kernel_height // 2, config.kernel_width // 2)
    column_mask = mask[:, None, None, :].float()
    batch, width = tokens.shape
    state = torch.zeros(batch, m, config.height, width, device=tokens.device)
    embedded = torch.tanh(model.embedding[tokens]) @ model.input_weight.T + model.input_bias  # (B, n, m)
    state[:, :, 0, :] = embedded.transpose(1, 2)
    state = state * column_mask
    dropout = dropout_rate(config, width) if model.training else 0.0
    hard = config.gate == "hard"
    for t in range(width):
        copy = t % config.copies
        for layer in range(config.layers_per_step):
            w_gate, b_gate = model.gate_weight[copy, layer], model.gate_bias[copy, layer]
            w_cand, b_cand = model.candidate_weight[copy, layer], model.candidate_bias[copy, layer]
            reset_pre = F.conv2d(state, w_gate[:m], b_gate[:m], padding=padding)
            update_pre = F.conv2d(state, w_gate[m:], b_gate[m:], padding=padding)
            if hard:
                reset, update = torch.clamp(0.5 * reset_pre + 0.5, 0, 1), torch.clamp(0.5 * update_pre + 0.5, 0, 1)
            else:
                reset, update = cutoff_sigmoid(reset_pre, config.cutoff), cutoff_sigmoid(update_pre, config.cutoff)
            cand_pre = F.conv2d(reset * state, w_cand, b_cand, padding=padding)
            candidate = torch.clamp(cand_pre, -1, 1) if hard else torch.tanh(cand_pre)
            if model.training and config.candidate_dropout > 0:
                candidate = F.dropout(candidate, config.candidate_dropout, training=True)
            kept = shift_for_diagonal_gates(state) if config.diagonal_gates else state
            state = (update * kept + (1 - update) * candidate) * column_mask
        if dropout > 0:
            state = F.dropout(state, dropout, training=True)
    row = state[:, :, 0, :]  # (B, m, n)
    return torch.einsum("bmn,cm->bnc", row, model.output_weight) + model.output_bias
