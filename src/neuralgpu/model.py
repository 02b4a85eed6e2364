"""The Neural GPU: a stack of convolutional GRUs applied n times to an (B, m, h, n) state.

``NeuralGPU(ModelConfig())`` is the paper's model (m = 24 channels, height 4, two CGRU layers a
step, the 1.2-cutoff sigmoid, six relaxed copies of the step parameters). The same weights run at
any width n; the model performs n steps for an input of n columns. Options from the follow-ups
(hard nonlinearities with a saturation cost, diagonal update gates, a 1-D state with one CGRU a
step) are switches in the config.

The model reads tokens and a column mask, nothing else: it knows no task notation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Neural GPU; everything the model is built from."""

    vocab_size: int = 13  # padding + digits 0-9 + two operators: the tasks' shared vocabulary
    channels: int = 24  # m
    height: int = 4  # h
    layers_per_step: int = 2  # CGRU layers applied in sequence at every step
    kernel_height: int = 3
    kernel_width: int = 3
    copies: int = 6  # parameter-sharing relaxation: step t uses copy t mod copies; 1 = tied
    gate: Literal["cutoff", "hard"] = "cutoff"  # cutoff: clip(c*sigmoid - (c-1)/2); hard: DNGPU's
    cutoff: float = 1.2
    diagonal_gates: bool = False  # update gate mixes the state shifted left/right (DNGPU)
    dropout: float = 0.15  # on the state after every step, scaled by 8/n
    # DNGPU's dropout: on every CGRU's candidate, at this rate whatever the length (0: none). Its
    # released trainer drops 10% for bmul and 50% for badd, and no state.
    candidate_dropout: float = 0.0
    # Initial bias of the update gate; None: the reset gate's (1.0 cutoff, 0.5 hard). DNGPU's is
    # 0.7 beside a reset bias of 0.5: its update gates start a little more open, keeping the state.
    update_bias: float | None = None
    embed_init: float = 1.7
    init_scale: float = 1.8  # conv weights ~ U(+-init_scale * sqrt(3 / fan_in))
    checkpoint_steps: bool = False  # recompute each step in backward: memory O(n), not O(n^2)

    def __post_init__(self) -> None:
        for field in ("vocab_size", "channels", "height", "layers_per_step", "copies"):
            if getattr(self, field) < 1:
                raise ValueError(f"ModelConfig.{field} must be >= 1, got {getattr(self, field)}")
        if self.kernel_height % 2 == 0 or self.kernel_width % 2 == 0:
            raise ValueError("kernel sizes must be odd so that 'same' padding keeps the state's shape")
        if self.gate not in ("cutoff", "hard"):
            raise ValueError(f"ModelConfig.gate must be 'cutoff' or 'hard', got {self.gate!r}")
        for field in ("dropout", "candidate_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"ModelConfig.{field} must be in [0, 1), got {getattr(self, field)}")


# The fields that decide what a model's weights compute; the rest (dropout, initialisation,
# checkpointing) only shape how it trains, so weights move between configs that share these.
ARCHITECTURE_FIELDS = (
    "vocab_size",
    "channels",
    "height",
    "layers_per_step",
    "kernel_height",
    "kernel_width",
    "copies",
    "gate",
    "cutoff",
    "diagonal_gates",
)


def architecture_differences(config: ModelConfig, other: ModelConfig) -> list[str]:
    """``"channels 16 vs 96"`` (the field, then config's value and other's) for every architecture field where they differ."""
    return [
        f"{name} {getattr(config, name)!r} vs {getattr(other, name)!r}"
        for name in ARCHITECTURE_FIELDS
        if getattr(config, name) != getattr(other, name)
    ]


class CellWeights(NamedTuple):
    """One CGRU's weights: views of one (copy, layer) slice of the relaxed parameters."""

    gate_weight: Tensor  # (2m, m, kh, kw): reset and update gates in one convolution
    gate_bias: Tensor  # (2m,)
    candidate_weight: Tensor  # (m, m, kh, kw)
    candidate_bias: Tensor  # (m,)


class ModelOutput(NamedTuple):
    logits: Tensor  # (B, n, vocab_size)
    saturation: Tensor  # scalar: mean of relu(|pre-activation| - 0.9) over hard gates (0 for cutoff)


def dropout_rate(config: ModelConfig, width: int) -> float:
    """The released code's schedule: rate 0.15 * 8 / n, smaller for longer inputs (capped at 0.5)."""
    return min(0.5, config.dropout * 8.0 / max(width, 1))


def shift_for_diagonal_gates(state: Tensor) -> Tensor:
    """First third of the channels moved one column left, second third one right, rest unshifted."""
    third = state.shape[1] // 3
    left = F.pad(state[:, :third, :, 1:], (0, 1))  # column j now holds column j + 1
    right = F.pad(state[:, third : 2 * third, :, :-1], (1, 0))  # column j now holds column j - 1
    return torch.cat([left, right, state[:, 2 * third :]], dim=1)


def saturation_cost(preactivation: Tensor) -> Tensor:
    return F.relu(preactivation.abs() - 0.9).mean()


def gate_activation(preactivation: Tensor, hard: bool, cutoff: float) -> Tensor:
    if hard:
        return torch.clamp(0.5 * preactivation + 0.5, 0.0, 1.0)
    return torch.clamp(cutoff * torch.sigmoid(preactivation) - (cutoff - 1.0) / 2.0, 0.0, 1.0)


def candidate_activation(preactivation: Tensor, hard: bool) -> Tensor:
    return torch.clamp(preactivation, -1.0, 1.0) if hard else torch.tanh(preactivation)


def convolve(state: Tensor, weight: Tensor, bias: Tensor, padding: tuple[int, int], dtype: torch.dtype | None) -> Tensor:
    """A same-padded convolution, its products in ``dtype`` when one is given and the result back in
    the state's: the state, the gates and the blend stay float32, so rounding does not pile up over
    the n steps. bfloat16 runs on a CPU's AMX tiles (measured: README, Speed and memory) and a GPU's
    tensor cores (not measured) at several times the float32 rate."""
    if dtype is None:
        return F.conv2d(state, weight, bias, padding=padding)
    return F.conv2d(state.to(dtype), weight.to(dtype), bias.to(dtype), padding=padding).to(state.dtype)


def cgru_cell(
    state: Tensor,
    column_mask: Tensor | None,
    gate_weight: Tensor,
    gate_bias: Tensor,
    candidate_weight: Tensor,
    candidate_bias: Tensor,
    *,
    hard: bool,
    cutoff: float,
    diagonal: bool,
    conv_dtype: torch.dtype | None = None,
    candidate_dropout: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """One masked convolutional GRU on a (B, m, h, n) state: the new state and its saturation cost.

    A pure function of its tensors, so that ``torch.compile`` can fuse everything between the two
    convolutions (``NeuralGPU.compile_cells``) while the model keeps indexing its relaxed copies.
    """
    padding = (gate_weight.shape[2] // 2, gate_weight.shape[3] // 2)
    gate_pre = convolve(state, gate_weight, gate_bias, padding, conv_dtype)
    reset, update = gate_activation(gate_pre, hard, cutoff).chunk(2, dim=1)  # each (B, m, h, n)
    cand_pre = convolve(reset * state, candidate_weight, candidate_bias, padding, conv_dtype)
    candidate = candidate_activation(cand_pre, hard)
    if candidate_dropout > 0.0:  # the caller passes 0 outside training
        candidate = F.dropout(candidate, candidate_dropout, training=True)
    kept = shift_for_diagonal_gates(state) if diagonal else state
    new_state = torch.lerp(candidate, kept, update)  # u * kept + (1 - u) * c, one op
    saturation = saturation_cost(gate_pre) + saturation_cost(cand_pre) if hard else state.new_zeros(())
    return (new_state if column_mask is None else new_state * column_mask), saturation


class NeuralGPU(nn.Module):
    """Embedding -> n steps of CGRU layers over the (B, m, h, n) state -> per-column logits."""

    RELAXED = ("gate_weight", "gate_bias", "candidate_weight", "candidate_bias")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        m, kh, kw = config.channels, config.kernel_height, config.kernel_width
        shape = (config.copies, config.layers_per_step)
        self.embedding = nn.Parameter(torch.empty(config.vocab_size, m))
        self.input_weight = nn.Parameter(torch.empty(m, m))  # the 1x1 convolution after tanh
        self.input_bias = nn.Parameter(torch.zeros(m))
        # Reset and update gates share one convolution: 2m output channels, split afterwards.
        self.gate_weight = nn.Parameter(torch.empty(*shape, 2 * m, m, kh, kw))
        self.gate_bias = nn.Parameter(torch.ones(*shape, 2 * m))
        self.candidate_weight = nn.Parameter(torch.empty(*shape, m, m, kh, kw))
        self.candidate_bias = nn.Parameter(torch.zeros(*shape, m))
        self.output_weight = nn.Parameter(torch.empty(config.vocab_size, m))  # 1x1 conv to logits
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.cell = cgru_cell  # or its torch.compile'd twin: compile_cells()
        self.conv_dtype: torch.dtype | None = None  # the CGRUs' convolutions in float32, or bf16_convolutions()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        config = self.config
        with torch.no_grad():
            self.embedding.uniform_(-config.embed_init, config.embed_init)
            self.embedding[0].zero_()  # padding embeds to zero
            conv_bound = config.init_scale * math.sqrt(3.0 / (config.kernel_height * config.kernel_width * config.channels))
            linear_bound = config.init_scale * math.sqrt(3.0 / config.channels)
            self.gate_weight.uniform_(-conv_bound, conv_bound)
            self.candidate_weight.uniform_(-conv_bound, conv_bound)
            self.input_weight.uniform_(-linear_bound, linear_bound)
            self.output_weight.uniform_(-linear_bound, linear_bound)
            # Gates start mostly open (keep the state): sigmoid-cutoff(1) = 0.78; the hard sigmoid
            # reaches 1.0 at +1, where it is flat and passes no gradient, so it starts at 0.5 (0.75).
            reset_bias = 0.5 if config.gate == "hard" else 1.0
            self.gate_bias[..., : config.channels].fill_(reset_bias)
            self.gate_bias[..., config.channels :].fill_(reset_bias if config.update_bias is None else config.update_bias)

    # --- the computation -------------------------------------------------------------------

    def embed(self, tokens: Tensor, column_mask: Tensor) -> Tensor:
        """Tokens (B, n) to the initial state (B, m, h, n): embedding in row 0, zeros below."""
        embedded = torch.tanh(F.embedding(tokens, self.embedding))  # (B, n, m)
        embedded = embedded @ self.input_weight.T + self.input_bias  # (B, n, m)
        state = embedded.transpose(1, 2).unsqueeze(2)  # (B, m, 1, n)
        state = F.pad(state, (0, 0, 0, self.config.height - 1))  # (B, m, h, n)
        # Channels-last keeps each cell's m channels together: oneDNN's and cuDNN's fast layout
        # for small images with few channels (measured ~1.6x faster per convolution on CPU).
        return (state * column_mask).contiguous(memory_format=torch.channels_last)

    def cell_weights(self) -> list[list[CellWeights]]:
        """Every CGRU's weights, indexed [copy][layer]: views, so gradients reach the parameters.

        A forward pass takes them once and hands them to its n steps. Indexing the parameters at
        every step instead (``gate_weight[copy, layer]``) costs backward a parameter-sized tensor of
        zeros per use, added into the gradient; one unbind stacks each gradient once. The sums are
        the same, bit for bit (a test checks), and a CPU training step ~3-7% faster (measured on
        the paper's and the ``fast`` model at length 41, batch 32).
        """
        slices = [[layer.unbind(0) for layer in getattr(self, name).unbind(0)] for name in self.RELAXED]
        return [
            [CellWeights(*(weights[copy][layer] for weights in slices)) for layer in range(self.config.layers_per_step)]
            for copy in range(self.config.copies)
        ]

    def cgru(self, state: Tensor, column_mask: Tensor | None, weights: CellWeights) -> tuple[Tensor, Tensor]:
        """One convolutional GRU, masked (None: no column is padding): the new state (B, m, h, n)
        and its saturation cost."""
        config = self.config
        # Through torch.compile a float argument is a constant of the kernel: pass a literal 0.0
        # outside training, so evaluation never runs (or compiles) the dropout.
        candidate_dropout = config.candidate_dropout if self.training else 0.0
        return self.cell(
            state,
            column_mask,
            *weights,
            hard=config.gate == "hard",
            cutoff=config.cutoff,
            diagonal=config.diagonal_gates,
            conv_dtype=self.conv_dtype,
            candidate_dropout=candidate_dropout,
        )

    def bf16_convolutions(self, enabled: bool = True) -> None:
        """Run the CGRUs' convolutions in bfloat16, everything else in float32. Opt-in (``--bf16``):
        answers are not guaranteed to equal float32's, only checked to on the shipped models (tests).
        """
        self.conv_dtype = torch.bfloat16 if enabled else None

    def compile_cells(self, mode: str | None = None) -> None:
        """Run every CGRU through ``torch.compile`` (Inductor): its pointwise work fused into a few
        kernels around the two convolutions, on a CPU as on a GPU. Same results up to float rounding
        (tests: 1e-5); the first call compiles (seconds), and one dynamic kernel then serves every
        width from 3 up (a few more cover widths 1-2, small batches and inference). Opt-in
        (``--compile``), because the eager path is the one every shipped model's training command
        reproduces bit for bit.
        """
        # Channels-last everywhere (as the eager model keeps its state): without it Inductor's
        # convolution-backward lowering fixes the strides, hence the width, and every new width of
        # the curriculum recompiled until torch fell back to eager after 8; with it, one kernel
        # serves all widths.
        self.cell = torch.compile(cgru_cell, mode=mode, dynamic=True, options={"force_layout_optimization": True})
        # Widths 1 and 2, batches of 1 (long evaluation), and grad or no grad each get a kernel of
        # their own: more than torch's default limit of 8 before it silently falls back to eager.
        dynamo = torch._dynamo.config
        limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"  # before torch 2.6
        setattr(dynamo, limit, max(getattr(dynamo, limit), 64))

    def step(self, state: Tensor, column_mask: Tensor | None, layers: list[CellWeights], dropout: float) -> tuple[Tensor, Tensor]:
        """One step: every CGRU layer (``layers``: one copy's weights), each followed by the mask,
        then dropout on the state."""
        saturation = state.new_zeros(())
        for weights in layers:
            state, cost = self.cgru(state, column_mask, weights)
            saturation = saturation + cost
        if dropout > 0.0:
            state = F.dropout(state, dropout, training=True)
        return state, saturation

    def run_steps(
        self,
        state: Tensor,
        column_mask: Tensor | None,
        cells: list[list[CellWeights]],
        start: int,
        stop: int,
        dropout: float,
        checkpoint_each: bool,
    ) -> tuple[Tensor, Tensor]:
        """Steps start..stop-1 (step t uses relaxed copy t mod copies of ``cells``, from
        ``cell_weights``); returns state and saturation."""
        saturation = state.new_zeros(())
        for t in range(start, stop):
            layers = cells[t % self.config.copies]
            if checkpoint_each:
                state, cost = checkpoint(self.step, state, column_mask, layers, dropout, use_reentrant=False)
            else:
                state, cost = self.step(state, column_mask, layers, dropout)
            saturation = saturation + cost
        return state, saturation

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> ModelOutput:
        """Tokens (B, n) and a column mask (B, n), True where input or target has a symbol."""
        if mask is None:
            mask = tokens != 0
        width = tokens.shape[1]
        column_mask = mask[:, None, None, :].to(self.embedding.dtype)  # (B, 1, 1, n)
        state = self.embed(tokens, column_mask)
        # Most training batches have no padding column: multiplying by ones changes nothing (bit for
        # bit), so the steps skip the mask's product, forward and backward, for those.
        if bool(mask.all()):
            column_mask = None
        dropout = dropout_rate(self.config, width) if self.training else 0.0
        cells = self.cell_weights()
        if self.config.checkpoint_steps and torch.is_grad_enabled():
            # Two levels: keep the state only at segment boundaries (about sqrt(n) of them); in
            # backward, a segment reruns keeping one state a step, and each step reruns alone.
            # Peak: ~3 sqrt(n) states instead of ~20 n state-sized tensors, for 2 extra forwards.
            segment = max(1, math.isqrt(width))
            saturation = state.new_zeros(())
            for start in range(0, width, segment):
                stop = min(start + segment, width)
                state, cost = checkpoint(
                    self.run_steps, state, column_mask, cells, start, stop, dropout, True, use_reentrant=False
                )
                saturation = saturation + cost
        else:
            state, saturation = self.run_steps(state, column_mask, cells, 0, width, dropout, False)
        return ModelOutput(self.read_out(state), saturation / max(width, 1))

    def read_out(self, state: Tensor) -> Tensor:
        """Logits (B, n, vocab) from row 0 of the final state: the 1x1 output convolution."""
        return state[:, :, 0, :].transpose(1, 2) @ self.output_weight.T + self.output_bias

    @torch.no_grad()
    def states(self, tokens: Tensor, mask: Tensor | None = None) -> Iterator[Tensor]:
        """The state (B, m, h, n) before the first step and after each of the n steps, one at a
        time, as in evaluation (no dropout): a caller that reads each and lets it go holds one."""
        if mask is None:
            mask = tokens != 0
        column_mask = mask[:, None, None, :].to(self.embedding.dtype)
        state = self.embed(tokens, column_mask)
        yield state
        cells = self.cell_weights()
        for t in range(tokens.shape[1]):
            state, _ = self.step(state, column_mask, cells[t % self.config.copies], 0.0)
            yield state

    @torch.no_grad()
    def trace(self, tokens: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The mental image: states (n + 1, B, m, h, n) before and after every step, and the logits.

        The last state is the one the logits are read from.
        """
        states = torch.stack(list(self.states(tokens, mask)))
        return states, self.read_out(states[-1])

    # --- the parameter-sharing relaxation --------------------------------------------------

    def relaxed_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, name) for name in self.RELAXED]

    def pull_distance(self) -> Tensor:
        """sum over copies of ||theta_i - mean(theta)||^2: what the relaxation's pull term scales."""
        total = self.embedding.new_zeros(())
        for parameter in self.relaxed_parameters():
            total = total + (parameter - parameter.mean(dim=0, keepdim=True)).pow(2).sum()
        return total

    def tie_copies(self) -> dict[nn.Parameter, nn.Parameter]:
        """Average the relaxed copies into one shared set; returns {old parameter: new parameter}."""
        replaced = {}
        for name in self.RELAXED:
            old = getattr(self, name)
            new = nn.Parameter(old.detach().mean(dim=0, keepdim=True).clone())
            setattr(self, name, new)
            replaced[old] = new
        self.config = replace(self.config, copies=1)
        return replaced

    @property
    def tied(self) -> bool:
        return self.config.copies == 1


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
