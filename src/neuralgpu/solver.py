"""``load(MODEL).solve(["1011+110"])``: answers in a person's notation from a trained model.

MODEL is a shipped model's name (see ``neuralgpu models``), a release file (``.safetensors``) or
a run directory: its release once the run has ended, its last resume snapshot before. Inputs of
any width run; those of one width share forward passes, batched to fit a memory budget. A bad input is reported on its own and never stops the others.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralgpu.checkpoint import (
    RELEASE_NAME,
    SNAPSHOT_NAME,
    CheckpointError,
    first_line,
    load_release,
    load_snapshot,
    model_config_from_dict,
)
from neuralgpu.evaluate import check_fits, predict
from neuralgpu.model import NeuralGPU
from neuralgpu.rundir import CONFIG_NAME
from neuralgpu.tasks import TaskInputError, get_task, task_names

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MEMORY_BUDGET = 2**30  # bytes of activations one forward pass may hold


def pretrained_names() -> list[str]:
    return sorted(path.stem for path in PRETRAINED_DIR.glob("*.safetensors"))


def resolve_model(spec: str) -> Path:
    """The release file that MODEL names, or a run directory's snapshot while it has no release; a
    one-line CheckpointError says what to do otherwise."""
    if spec in pretrained_names():
        return PRETRAINED_DIR / f"{spec}.safetensors"
    path = Path(spec)
    if path.is_dir():
        for name in (RELEASE_NAME, SNAPSHOT_NAME):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: this run directory has neither a {RELEASE_NAME} nor a {SNAPSHOT_NAME} to load")
    if path.is_file():
        return path
    shipped = ", ".join(pretrained_names()) or "none installed"
    if spec in task_names():  # a task without a shipped model, such as bmul: say so, and how to get one
        raise CheckpointError(
            f"no shipped model for the task {spec!r} yet: "
            f"train one with `neuralgpu train --task {spec}` and give its run directory, or use a shipped model ({shipped})"
        )
    raise CheckpointError(f"no model called {spec!r}: give a shipped model ({shipped}), a .safetensors file or a run directory")


@dataclass(frozen=True)
class Answer:
    """One input and either its answer or the reason it has none."""

    text: str
    answer: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"input": self.text, "answer": self.answer, "error": self.error}


class Solver:
    """A trained model together with its task's notation."""

    def __init__(self, model: NeuralGPU, card: dict[str, Any], memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.model = model.eval()
        self.card = card
        self.task = get_task(card["task"])
        self.memory_budget = memory_budget

    def answer(self, texts: list[str]) -> list[Answer]:
        """Every input answered or given its own error, in order."""
        results: list[Answer | None] = [None] * len(texts)
        by_width: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for index, text in enumerate(texts):
            try:
                tokens = self.task.parse(text)
                check_fits(self.model, len(tokens), self.memory_budget)
            except (TaskInputError, MemoryError) as error:
                results[index] = Answer(text, error=str(error))
                continue
            by_width[len(tokens)].append((index, tokens))
        for width, items in by_width.items():
            inputs = np.stack([tokens for _, tokens in items])
            mask = np.ones_like(inputs, dtype=bool)  # every column of a parsed input is in play
            predictions = predict(self.model, inputs, mask, self.memory_budget)
            for (index, _), row in zip(items, predictions):
                results[index] = Answer(texts[index], answer=self.task.answer_text(row, width))
        return [result for result in results if result is not None]

    def one_input(self, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One parsed input as a batch of one on the model's device, and its mask: every column in play."""
        device = next(self.model.parameters()).device
        batch = torch.from_numpy(tokens[None]).to(device)
        return batch, torch.ones_like(batch, dtype=torch.bool)

    def solve(self, texts: list[str]) -> list[str]:
        """The answers; raises TaskInputError naming the first input that cannot be read."""
        answers = self.answer(texts)
        for position, answer in enumerate(answers, start=1):
            if answer.error is not None:
                raise TaskInputError(f"input {position} ({answer.text!r}): {answer.error}")
        return [answer.answer for answer in answers]  # type: ignore[misc]


def load(spec: str, device: str | torch.device = "cpu", memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Solver:
    """A Solver for a shipped model's name, a release file or a run directory (from its last
    snapshot while it has no release: its card then says ``snapshot_step``)."""
    return Solver(*load_model(spec, device), memory_budget)


def load_model(spec: str, device: str | torch.device = "cpu") -> tuple[NeuralGPU, dict[str, Any]]:
    """The model and card MODEL names (see ``resolve_model``); every problem is a one-line CheckpointError."""
    path = resolve_model(spec)
    return load_run_snapshot(path.parent, device) if path.name == SNAPSHOT_NAME else load_release(path, device)


def load_run_snapshot(run_dir: Path, device: str | torch.device = "cpu") -> tuple[NeuralGPU, dict[str, Any]]:
    """The model a running (or stopped) run's last snapshot holds, as its checks judge it: the
    moving average of the weights when the run keeps one. Its card names the task the run was
    learning at that step (a stage's, in a run with stages), and ``snapshot_step``, the step."""
    state = load_snapshot(run_dir / SNAPSHOT_NAME)
    try:
        config = json.loads((run_dir / CONFIG_NAME).read_text())["train_config"]
        tasks = [*config.get("stages", []), config["task"]]
        task = tasks[min(int(state.get("stage", 0)), len(tasks) - 1)]
        averaged = state.get("averaged")
        # An average's state is its module's, prefixed, and a count of the weights averaged.
        weights = (
            state["model"]
            if averaged is None
            else {name.removeprefix("module."): tensor for name, tensor in averaged.items() if name.startswith("module.")}
        )
        model = NeuralGPU(model_config_from_dict(state["model_config"]))
        model.load_state_dict(weights)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{run_dir}: its snapshot or {CONFIG_NAME} cannot be read as a run's ({first_line(error)})"
        ) from None
    card = {
        "task": task,
        "recipe": config.get("recipe"),
        "seed": config.get("seed"),
        "snapshot_step": int(state["step"]),
        "train_config": config,
    }
    return model.to(device).eval(), card
