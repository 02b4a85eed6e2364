"""``neuralgpu show``: the mental image, the state at every step of one computation.

The state is (m channels, h rows, n columns) at each of the n + 1 moments (before the first step
and after each). A picture cannot show m channels per cell, so the channels are projected onto
their first three principal components, fitted over all cells of all steps of this one input, and
shown as red, green and blue: cells in a similar state get similar colours, and a carry moving
along the columns is a colour moving across the frames. A PNG is a grid of frames (evenly spaced
steps, first and last included), or for a one-row state a single picture with one row per step;
a GIF plays every step. Input symbols label the columns on top,
the model's output symbols below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralgpu.solver import Solver
from neuralgpu.tasks import PAD, SYMBOLS

MAX_SHOW_WIDTH = 512  # one frame per step: wider inputs make pictures nobody can read
IMAGE_SUFFIXES = (".png", ".gif")


@dataclass(frozen=True)
class MentalImage:
    """What ``show`` draws: RGB frames (steps + 1, h, n, 3) in [0, 1] and the column labels."""

    frames: np.ndarray
    input_symbols: list[str]
    output_symbols: list[str]
    answer: str

    @property
    def steps(self) -> int:
        return len(self.frames) - 1


def use_headless_matplotlib() -> None:
    """Select matplotlib's Agg backend (no display needed), or say how to install the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("pictures need matplotlib: pip install 'neuralgpu[plot]'") from None
    matplotlib.use("Agg")


def symbols_of(tokens: np.ndarray) -> list[str]:
    return [" " if token == PAD else SYMBOLS[token - 1] for token in tokens.tolist()]


def project_to_rgb(states: np.ndarray) -> np.ndarray:
    """States (T, m, h, n) to colours (T, h, n, 3): top three principal components, scaled to [0, 1]."""
    steps, channels, height, width = states.shape
    cells = states.transpose(0, 2, 3, 1).reshape(-1, channels).astype(np.float64)
    centred = cells - cells.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:3].T
    if projected.shape[1] < 3:  # fewer than three channels: pad with a constant colour
        projected = np.pad(projected, ((0, 0), (0, 3 - projected.shape[1])))
    low, high = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
    scaled = np.clip((projected - low) / np.maximum(high - low, 1e-9), 0.0, 1.0)
    return scaled.reshape(steps, height, width, 3)


def mental_image(solver: Solver, text: str) -> MentalImage:
    """Run the model on one input (a TaskInputError when it cannot be read) and keep every state."""
    tokens = solver.task.parse(text)
    if len(tokens) > MAX_SHOW_WIDTH:
        raise ValueError(f"the input is {len(tokens)} columns wide; show draws inputs up to {MAX_SHOW_WIDTH} columns")
    states, logits = solver.model.trace(*solver.one_input(tokens))
    predicted = logits.argmax(-1)[0].cpu().numpy()
    return MentalImage(
        frames=project_to_rgb(states[:, 0].float().cpu().numpy()),
        input_symbols=symbols_of(tokens),
        output_symbols=symbols_of(predicted),
        answer=solver.task.answer_text(predicted, len(tokens)),
    )


def frame_steps(steps: int, count: int) -> list[int]:
    """``count`` evenly spaced moments from 0 to ``steps``, both ends included, no repeats."""
    return sorted({round(value) for value in np.linspace(0, steps, min(count, steps + 1))})


def label_columns(axes, input_symbols: list[str], output_symbols: list[str], top: bool, bottom: bool) -> None:
    """Input symbols over the columns, output symbols under them; no row ticks."""
    columns = np.arange(len(input_symbols))
    axes.set_yticks([])
    axes.set_xticks(columns if bottom else [])
    if bottom:
        axes.set_xticklabels(output_symbols, fontsize=7, family="monospace")
    if top:
        twin = axes.secondary_xaxis("top")
        twin.set_xticks(columns)
        twin.set_xticklabels(input_symbols, fontsize=7, family="monospace")


def label_steps(axes, steps: int) -> None:
    """About twelve step numbers down the side of a picture with a row per step."""
    rows = frame_steps(steps, 12)
    axes.set_yticks(rows)
    axes.set_yticklabels([str(step) for step in rows], fontsize=7)
    axes.set_ylabel("step")


def render_space_time(image: MentalImage, path: Path, title: str = "") -> None:
    """A one-row state over time: every step a row of the picture, step 0 on top."""
    import matplotlib.pyplot as plt

    width = len(image.input_symbols)
    figure, axes = plt.subplots(figsize=(max(4.0, 0.2 * width + 1.5), max(3.0, 0.12 * image.steps + 1.5)))
    axes.imshow(image.frames[:, 0], aspect="auto", interpolation="nearest")
    label_columns(axes, image.input_symbols, image.output_symbols, top=True, bottom=True)
    label_steps(axes, image.steps)
    axes.set_title(title or f"answer {image.answer}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def render_png(image: MentalImage, path: Path, frames: int = 12, title: str = "") -> None:
    """A grid of ``frames`` moments, one panel each, labelled with their step.

    A state of one row (the 1-D models) reads better as one picture with a row per step.
    """
    import matplotlib.pyplot as plt

    if image.frames.shape[1] == 1:
        render_space_time(image, path, title)
        return
    chosen = frame_steps(image.steps, frames)
    columns = min(3, len(chosen))
    rows = -(-len(chosen) // columns)
    width = len(image.input_symbols)
    figure, axes = plt.subplots(rows, columns, figsize=(max(4.0, 0.12 * width) * columns, 1.3 * rows + 0.8), squeeze=False)
    for panel, axes_ in enumerate(axes.flat):
        if panel >= len(chosen):
            axes_.axis("off")
            continue
        step = chosen[panel]
        axes_.imshow(image.frames[step], aspect="auto", interpolation="nearest")
        axes_.set_title(f"step {step}", fontsize=8, loc="left")
        label_columns(axes_, image.input_symbols, image.output_symbols, top=True, bottom=True)
    figure.suptitle(title or f"answer {image.answer}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def render_gif(image: MentalImage, path: Path, frames: int = 200, fps: int = 8, title: str = "") -> None:
    """An animation: one frame per moment (at most ``frames`` of them, evenly spaced)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    chosen = frame_steps(image.steps, frames)
    width = len(image.input_symbols)
    figure, axes = plt.subplots(figsize=(max(4.0, 0.14 * width), 2.2))
    picture = axes.imshow(image.frames[0], aspect="auto", interpolation="nearest")
    label_columns(axes, image.input_symbols, image.output_symbols, top=True, bottom=True)
    caption = axes.set_title("", fontsize=9, loc="left")
    figure.tight_layout()

    def draw(index: int):
        step = chosen[index]
        picture.set_data(image.frames[step])
        caption.set_text(f"{title or 'answer ' + image.answer}    step {step}/{image.steps}")
        return picture, caption

    animation = FuncAnimation(figure, draw, frames=len(chosen), blit=False)
    animation.save(str(path), writer=PillowWriter(fps=fps), dpi=80)
    plt.close(figure)


def render(image: MentalImage, path: Path, frames: int | None = None, title: str = "") -> None:
    """PNG or GIF by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: the picture must be a .png (grid of frames) or a .gif (animation)")
    use_headless_matplotlib()
    if suffix == ".png":
        render_png(image, path, frames or 12, title)
    else:
        render_gif(image, path, frames or 200, title=title)
