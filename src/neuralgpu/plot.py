"""``neuralgpu plot``: training curves and generalisation curves of one or more runs, one figure.

Three panels, one colour per run: the training sequence error against step, the curriculum length
against step, and the sequence error against input length (solid: random inputs; dashed: the worst
structured suite). The generalisation panel reads the evaluations on each run's release card, plus
any lengths a person asks for, evaluated on the spot.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuralgpu.checkpoint import RELEASE_NAME, read_card
from neuralgpu.rundir import read_metrics
from neuralgpu.show import use_headless_matplotlib


@dataclass
class RunCurves:
    """What the figure draws for one run."""

    label: str
    steps: list[int] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    random_error: dict[int, float] = field(default_factory=dict)  # length -> sequence error
    structured_error: dict[int, float] = field(default_factory=dict)  # length -> worst structured suite


def generalisation(evaluations: list[dict[str, Any]]) -> tuple[dict[int, float], dict[int, float]]:
    """(random, worst structured) sequence error per length, from EvalResult JSON records."""
    random: dict[int, float] = {}
    structured: dict[int, float] = defaultdict(float)
    for record in evaluations:
        length, error = int(record["length"]), float(record["sequence_error"])
        if record["suite"] == "random":
            random[length] = error
        else:
            structured[length] = max(structured[length], error)
    return random, dict(structured)


def load_curves(run_dir: Path, extra_evaluations: list[dict[str, Any]] | None = None) -> RunCurves:
    """A run directory's curves; a ValueError when it has no metrics at all."""
    metrics = read_metrics(run_dir)
    if not metrics:
        raise ValueError(f"{run_dir}: no metrics.jsonl here; give the directory a `neuralgpu train` run wrote")
    curves = RunCurves(label=run_dir.name or str(run_dir))
    for record in metrics:
        if "train_seq_error" in record:
            curves.steps.append(int(record["step"]))
            curves.train_error.append(float(record["train_seq_error"]))
            curves.length.append(int(record["length"]))
    evaluations = list(extra_evaluations or [])
    release = run_dir / RELEASE_NAME
    if release.is_file():
        card = read_card(release)
        curves.label = f"{run_dir.name} ({card['task']}, {card['recipe']}, seed {card['seed']})"
        evaluations = card.get("evaluation", []) + evaluations
    curves.random_error, curves.structured_error = generalisation(evaluations)
    return curves


def plot_runs(curves: list[RunCurves], out: Path, title: str = "") -> None:
    """Write the three-panel figure to ``out`` (any format matplotlib writes: png, pdf, svg)."""
    use_headless_matplotlib()
    import matplotlib
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, (errors, lengths, general) = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, run in enumerate(curves):
        colour = colours[index % len(colours)]
        errors.plot(run.steps, run.train_error, color=colour, label=run.label, linewidth=1.2)
        lengths.plot(run.steps, run.length, color=colour, linewidth=1.2)
        for table, style, kind in ((run.random_error, "-o", "random"), (run.structured_error, "--s", "structured")):
            if table:
                points = sorted(table.items())
                general.plot([p[0] for p in points], [p[1] for p in points], style, color=colour, label=f"{kind}", markersize=4)
    errors.set(xlabel="step", ylabel="training sequence error", title="training error", ylim=(-0.02, 1.02))
    lengths.set(xlabel="step", ylabel="curriculum length", title="curriculum")
    general.set(xlabel="input length (columns)", ylabel="sequence error", title="generalisation", ylim=(-0.02, 1.02))
    general.set_xscale("log")
    lengths_drawn = sorted({n for run in curves for n in (*run.random_error, *run.structured_error)})
    if lengths_drawn:
        general.set_xticks(lengths_drawn)  # the lengths measured, written out: 401, not 4x10^2
    general.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    general.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    errors.legend(fontsize=7, loc="upper right")
    handles, labels = general.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per line style, not per run
    general.legend(unique.values(), unique.keys(), fontsize=7)
    for axes in (errors, lengths, general):
        axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
