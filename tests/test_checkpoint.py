"""Release files round-trip exactly; every kind of broken file gets a one-line error naming it."""

import json

import pytest
import torch
from safetensors.torch import save_file

from neuralgpu.checkpoint import CheckpointError, load_release, load_snapshot, save_release, save_snapshot
from neuralgpu.model import ModelConfig, NeuralGPU


@pytest.fixture
def release(tmp_path):
    torch.manual_seed(0)
    model = NeuralGPU(ModelConfig(channels=8, copies=1)).eval()
    path = tmp_path / "model.safetensors"
    save_release(path, model, {"task": "badd"})
    return path, model


def test_release_round_trips_to_bit_identical_outputs(release):
    path, model = release
    loaded, card = load_release(path)
    assert card["task"] == "badd" and card["model_config"]["channels"] == 8
    assert json.loads(path.with_suffix(".json").read_text())["task"] == "badd"
    tokens = torch.randint(1, 13, (4, 11))
    assert torch.equal(loaded(tokens).logits, model(tokens).logits)


def test_truncated_release(release):
    path, _ = release
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as error:
        load_release(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a neuralgpu release checkpoint"):
        load_release(path)


def test_not_a_safetensors_file_at_all(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_release(path)


def test_wrong_format_version(release, tmp_path):
    _, model = release
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    future = tmp_path / "future.safetensors"
    save_file(tensors, str(future), metadata={"format": "neuralgpu", "format_version": "99", "card": "{}"})
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        load_release(future)


def test_weights_that_do_not_match_the_card(release, tmp_path):
    _, model = release
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    card = {"format": "neuralgpu", "format_version": 1, "model_config": {"channels": 16, "copies": 1}}
    odd = tmp_path / "odd.safetensors"
    save_file(tensors, str(odd), metadata={"format": "neuralgpu", "format_version": "1", "card": json.dumps(card)})
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_release(odd)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_release(tmp_path / "absent.safetensors")


def test_snapshots_load_without_pickle_code_and_refuse_junk(tmp_path):
    path = tmp_path / "snapshot.pt"
    save_snapshot(path, {"format": "neuralgpu", "format_version": 1, "step": 3, "weights": torch.ones(2)})
    assert load_snapshot(path)["step"] == 3
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable resume snapshot"):
        load_snapshot(path)

    class Evil:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    torch.save({"format": "neuralgpu", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable resume snapshot"):
        load_snapshot(path)
    torch.save({"something": "else"}, path)
    with pytest.raises(CheckpointError, match="not a neuralgpu resume snapshot"):
        load_snapshot(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "snapshot.pt"
    save_snapshot(path, {"format": "neuralgpu", "format_version": 1, "step": 1})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_snapshot(path, {"bad": Unsaveable()})
    assert load_snapshot(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.pt"]
