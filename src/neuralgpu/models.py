"""The shipped models: what each card says, and how a verification is added to a card.

A shipped model is ``pretrained/NAME.safetensors`` with its card inside (and a copy beside it as
``NAME.json``). The card holds the training record and every evaluation made of the model, each
with the command and hardware that produced it, so ``neuralgpu models`` can say how far each one
was shown to make no errors.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuralgpu.checkpoint import load_release, read_card, save_release
from neuralgpu.evaluate import EvalResult
from neuralgpu.solver import PRETRAINED_DIR, pretrained_names
from neuralgpu.tasks import get_task


@dataclass(frozen=True)
class ShippedModel:
    name: str
    card: dict[str, Any]

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        """Every evaluation on the card: the one training ended with, then each verification."""
        records = list(self.card.get("evaluation", []))
        for verification in self.card.get("verifications", []):
            records.extend(verification["results"])
        return records

    def error_free_up_to(self) -> tuple[int, int, bool]:
        """(longest length with zero errors in every evaluation there, largest random sample there, structured too?).

        A length counts only when every evaluation at it, random and structured, had zero errors,
        and one of them was on random inputs: structured suites alone (a verification stopped
        before its random inputs were scored) are no claim about the task's inputs at large.
        Since all of them were clean, the largest random evaluation there is the strongest claim.
        """
        by_length: dict[int, list[dict[str, Any]]] = {}
        for record in self.evaluations:
            by_length.setdefault(int(record["length"]), []).append(record)
        clean = [
            n
            for n, records in by_length.items()
            if all(r["sequence_errors"] == 0 for r in records) and any(r["suite"] == "random" for r in records)
        ]
        if not clean:
            return 0, 0, False
        longest = max(clean)
        records = by_length[longest]
        random_samples = max((r["samples"] for r in records if r["suite"] == "random"), default=0)
        return longest, random_samples, any(r["suite"] != "random" for r in records)

    def failing_lengths(self) -> list[int]:
        """Every length at which some evaluation on the card had a wrong sequence, shortest first."""
        return sorted({int(record["length"]) for record in self.evaluations if record["sequence_errors"]})

    @property
    def train_length(self) -> int:
        return int(self.card["train_lengths"][1])

    @property
    def trained_on(self) -> bool:
        """Whether the run that made it started from another model's weights (``--init-from``)."""
        return bool(self.card.get("initial_model"))


def shipped_models() -> list[ShippedModel]:
    return [ShippedModel(name, read_card(PRETRAINED_DIR / f"{name}.safetensors")) for name in pretrained_names()]


def format_models(models: list[ShippedModel]) -> str:
    def width(title: str, values: list[str]) -> int:  # a text column fits its title and every entry
        return max(len(text) for text in [title, *values])

    name_width = width("model", [model.name for model in models])
    task_width = width("task", [model.card["task"] for model in models])
    recipe_width = width("recipe", [model.card["recipe"] for model in models])
    header = (
        f"{'model':<{name_width}} {'task':<{task_width}} {'recipe':<{recipe_width}} {'seed':>4} {'steps':>6} {'train s':>8} "
        f"{'trained to':>10}  zero errors up to"
    )
    lines = [header, "-" * (len(header) + 24)]
    for model in models:
        longest, samples, structured = model.error_free_up_to()
        factor = get_task(model.card["task"]).length_factor(longest, model.train_length)
        reach = f"length {longest} ({factor:.0f}x; {samples} random" + (" + structured suites)" if structured else ")")
        beyond = [str(length) for length in model.failing_lengths() if length > longest]
        if beyond:  # a clean reach says nothing of longer inputs that were seen to fail
            reach += f"; errors at {', '.join(beyond)}"
        card = model.card
        steps = f"{card['steps']}{'+' if model.trained_on else ''}"
        lines.append(
            f"{model.name:<{name_width}} {card['task']:<{task_width}} {card['recipe']:<{recipe_width}} {card['seed']:>4} "
            f"{steps:>6} {card['wall_clock_s']:>8.0f} {model.train_length:>10}  "
            f"{reach if longest else 'none recorded'}"
        )
    if any(model.trained_on for model in models):
        # Steps and seconds of a last stage alone would read as the whole cost of learning the task.
        lines.append(
            "+ trained on from another model's weights: steps and train s are the last run's (see its card's initial_model)"
        )
    return "\n".join(lines)


def cpu_threads() -> str:
    """How many threads torch computes with here, for a card's hardware: '1 thread', '2 threads'."""
    threads = torch.get_num_threads()
    return f"{threads} thread{'' if threads == 1 else 's'}"


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu {platform.processor() or platform.machine()} ({cpu_threads()})"


def recorded_results(card: dict[str, Any]) -> dict[tuple[int, str], list[EvalResult]]:
    """Per (length, suite), the card's evaluations, those on the most examples first: the prefixes
    of frozen sets that ``neuralgpu eval --extend`` may go on from instead of scoring them again."""
    recorded: dict[tuple[int, str], list[EvalResult]] = {}
    for record in ShippedModel("", card).evaluations:
        recorded.setdefault((int(record["length"]), str(record["suite"])), []).append(EvalResult.from_json(record))
    return {key: sorted(results, key=lambda result: -result.samples) for key, results in recorded.items()}


def record_verification(
    path: Path,
    results: list[EvalResult],
    command: str,
    continued: dict[tuple[int, str], int] | None = None,
    stopped: bool = False,
) -> None:
    """Append an evaluation, with the command and hardware that made it, to a release's card.

    ``continued`` names the results that went on from an earlier record (length, suite) and the
    examples taken from it; ``stopped`` marks an evaluation stopped before its last example, whose
    results hold the prefix scored.
    """
    model, card = load_release(path)
    verification: dict[str, Any] = {
        "command": command,
        "hardware": hardware(),
        "date": datetime.date.today().isoformat(),
        "results": [result.to_json() for result in results],
    }
    if continued:
        verification["continued_from_card"] = [
            {"length": length, "suite": suite, "examples_already_recorded": examples}
            for (length, suite), examples in continued.items()
        ]
    if stopped:
        verification["stopped"] = True
    card["verifications"] = card.get("verifications", []) + [verification]
    for key in ("format", "format_version", "model_config"):  # save_release writes these afresh
        card.pop(key, None)
    save_release(path, model, card)
