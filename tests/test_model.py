"""The model: shapes, masking, gradients, the relaxation and the options from the follow-ups."""

import dataclasses

import pytest
import torch

from neuralgpu.model import CellWeights, ModelConfig, NeuralGPU, count_parameters, dropout_rate


def make(**options):
    torch.manual_seed(0)
    return NeuralGPU(ModelConfig(channels=8, **options))


def test_one_cgru_pair_of_the_paper_has_about_31k_parameters():
    model = NeuralGPU(ModelConfig())
    per_copy = sum(getattr(model, name)[0].numel() for name in NeuralGPU.RELAXED)
    assert 30_000 <= per_copy <= 32_000
    assert count_parameters(model) > 6 * per_copy


@pytest.mark.parametrize("width", [1, 5, 17])
def test_output_shape_and_finite(width):
    model = make().eval()
    tokens = torch.randint(1, 13, (3, width))
    output = model(tokens)
    assert output.logits.shape == (3, width, 13)
    assert torch.isfinite(output.logits).all()


def test_padding_cannot_change_the_answer():
    """Whatever sits in masked-out columns, the answer in the real columns is the same."""
    model = make().eval()
    tokens = torch.cat([torch.randint(1, 13, (4, 9)), torch.zeros(4, 6, dtype=torch.long)], dim=1)
    mask = tokens != 0
    garbage = tokens.clone()
    garbage[:, 9:] = torch.randint(1, 13, (4, 6))
    clean = model(tokens, mask).logits[:, :9]
    torch.testing.assert_close(model(garbage, mask).logits[:, :9], clean)
    assert not torch.allclose(model(garbage, torch.ones_like(mask)).logits[:, :9], clean)


def test_steps_without_padding_skip_the_mask_and_compute_the_same_bits():
    model = make().train()
    state = torch.randn(3, 8, 4, 9, requires_grad=True)
    results = []
    for mask in (torch.ones(3, 1, 1, 9), None):
        torch.manual_seed(1)  # the same dropout
        out, _ = model.run_steps(state, mask, model.cell_weights(), 0, 9, dropout=0.1, checkpoint_each=False)
        (gradient,) = torch.autograd.grad(out.square().sum(), state)
        results.append((out, gradient))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


class IndexedEveryStep:
    """``cells[copy]`` as the model once took it: the parameters indexed afresh at every step."""

    def __init__(self, model):
        self.model = model

    def __getitem__(self, copy):
        layers = range(self.model.config.layers_per_step)
        return [CellWeights(*(getattr(self.model, name)[copy, layer] for name in NeuralGPU.RELAXED)) for layer in layers]


@pytest.mark.parametrize("options", [{}, {"height": 1, "kernel_height": 1, "gate": "hard", "diagonal_gates": True}])
def test_weights_unbound_once_give_the_gradients_of_indexing_every_step_bit_for_bit(options, monkeypatch):
    """The shipped models' training commands reproduce their files bit for bit: taking each CGRU's
    weights once a forward pass (for speed) must not move a gradient by one rounding."""
    tokens = torch.randint(1, 13, (4, 14))
    gradients = []
    for indexed in (False, True):
        model = make(copies=3, **options).train()
        if indexed:
            monkeypatch.setattr(model, "cell_weights", lambda model=model: IndexedEveryStep(model))
        torch.manual_seed(2)  # the same dropout
        output = model(tokens)
        (output.logits.square().mean() + output.saturation).backward()
        gradients.append([parameter.grad for parameter in model.parameters()])
    assert all(torch.equal(ours, indexed) for ours, indexed in zip(*gradients))


def test_other_rows_of_the_batch_do_not_matter():
    model = make().eval()
    tokens = torch.randint(1, 13, (5, 7))
    alone = model(tokens[:1]).logits
    together = model(tokens).logits[:1]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options", [{}, {"gate": "hard", "diagonal_gates": True}, {"height": 1, "kernel_height": 1, "layers_per_step": 1}]
)
def test_every_parameter_gets_a_gradient(options):
    model = make(**options).train()
    tokens = torch.randint(1, 13, (4, 12))  # 12 steps: every one of the 6 copies is used
    output = model(tokens)
    loss = output.logits.logsumexp(-1).mean() + output.saturation + model.pull_distance()
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_pull_distance_is_zero_only_when_copies_agree_and_tie_averages():
    model = make()
    assert model.pull_distance() > 0
    expected = model.gate_weight.detach().mean(dim=0, keepdim=True)
    replaced = model.tie_copies()
    assert len(replaced) == 4 and model.tied and model.config.copies == 1
    torch.testing.assert_close(model.gate_weight.detach(), expected)
    assert model.pull_distance() == 0
    assert model(torch.randint(1, 13, (2, 8))).logits.shape == (2, 8, 13)


def test_dropout_shrinks_with_length_and_only_in_training():
    config = ModelConfig()
    assert dropout_rate(config, 8) == pytest.approx(0.15)
    assert dropout_rate(config, 80) == pytest.approx(0.015)
    model = make(dropout=0.3).eval()
    tokens = torch.randint(1, 13, (2, 6))
    torch.testing.assert_close(model(tokens).logits, model(tokens).logits)


def test_candidate_dropout_drops_candidates_in_training_only():
    """With the update gate shut (update_bias -50), a CGRU's new state is its candidate: in training
    each entry is either dropped or scaled by 1 / (1 - rate); in evaluation it is left alone."""
    model = make(height=1, kernel_height=1, update_bias=-50.0, candidate_dropout=0.5, dropout=0.0)
    assert (model.gate_bias[..., 8:] == -50).all() and (model.gate_bias[..., :8] == 1).all()
    state = torch.randn(4, 8, 1, 10).contiguous(memory_format=torch.channels_last)
    ones = torch.ones(4, 1, 1, 10)
    weights = model.cell_weights()[0][0]
    candidate, _ = model.eval().cgru(state, ones, weights)
    dropped, _ = model.train().cgru(state, ones, weights)
    zero = dropped == 0
    assert 0.4 < zero.float().mean() < 0.6
    torch.testing.assert_close(dropped[~zero], 2 * candidate[~zero])
    tokens = torch.randint(1, 13, (2, 6))
    model.eval()
    torch.testing.assert_close(model(tokens).logits, model(tokens).logits)


def test_checkpointed_steps_give_the_same_gradients():
    plain = make(dropout=0.0)
    checkpointed = NeuralGPU(dataclasses.replace(plain.config, checkpoint_steps=True))
    checkpointed.load_state_dict(plain.state_dict())
    tokens = torch.randint(1, 13, (3, 10))
    for model in (plain, checkpointed):
        model(tokens).logits.logsumexp(-1).mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_hard_gates_report_saturation():
    model = make(gate="hard", init_scale=6.0)
    assert model(torch.randint(1, 13, (2, 8))).saturation > 0
    assert make()(torch.randint(1, 13, (2, 8))).saturation == 0


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(kernel_width=2)
    with pytest.raises(ValueError, match="gate"):
        ModelConfig(gate="relu")


@pytest.mark.parametrize("options", [{}, {"gate": "hard", "diagonal_gates": True, "height": 1, "kernel_height": 1}])
def test_bf16_convolutions_round_only_the_convolutions(options):
    torch.manual_seed(0)
    model = NeuralGPU(ModelConfig(copies=1, **options)).eval()
    tokens = torch.randint(1, 4, (3, 11))
    with torch.no_grad():
        full = model(tokens).logits
        model.bf16_convolutions()
        half = model(tokens).logits
        model.bf16_convolutions(False)
        again = model(tokens).logits
    assert half.dtype == torch.float32  # the state and the read-out stay float32
    # bfloat16 keeps 8 bits of mantissa: the logits move by rounding, not by a different computation.
    assert not torch.equal(half, full) and torch.allclose(half, full, atol=0.1, rtol=0.05)
    assert torch.equal(again, full)
    model.train().bf16_convolutions()
    model(tokens).logits.sum().backward()  # gradients flow back through the casts, in float32
    assert all(parameter.grad is not None and parameter.grad.dtype == torch.float32 for parameter in model.parameters())
