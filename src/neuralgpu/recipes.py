"""Named training recipes: complete TrainConfigs for a task.

``paper`` is Kaiser & Sutskever's recipe as the released code ran it. Other recipes change only
what they name; ``build_config`` applies a person's overrides (seed, steps, budget, device) last.
``train_command`` goes the other way: the shortest command line, a recipe and what changes it,
that builds a given config (a card's ``command``, a chain's ``initial_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from neuralgpu.curriculum import CurriculumConfig
from neuralgpu.model import ModelConfig
from neuralgpu.settings import differences
from neuralgpu.tasks import ArithmeticTask, get_task
from neuralgpu.train_config import TrainConfig, train_config_from_dict

DEFAULT_RECIPE = "fast"


def paper(task: str) -> TrainConfig:
    """The paper: m=24, h=4, 2 CGRUs a step, 6 relaxed copies, curriculum 6 -> 41, Adam."""
    return TrainConfig(task=task, recipe="paper", model=ModelConfig(), curriculum=CurriculumConfig())


def tiny(task: str) -> TrainConfig:
    """A small, quick configuration for tests and demos on short inputs (lengths up to 8)."""
    return TrainConfig(
        task=task,
        recipe="tiny",
        model=ModelConfig(channels=16, height=2, copies=1, dropout=0.15),
        curriculum=CurriculumConfig(start=4, max_length=12, min_length=2, check_every=50, random_share=0.25),
        lr=3e-3,
        grad_noise=0.0,
        eval_every=50,
        eval_samples=64,
        long_eval_samples=128,
        generalization_factor=4,
        log_every=25,
        snapshot_every=100,
        final_suites="random",
    )


def fast(task: str) -> TrainConfig:
    """Ours: a 1-D state of 96 channels with diagonal gates, one CGRU a step, no relaxation, a quick
    curriculum, Adam 3e-3.

    The paper's (m=24, h=4) state holds 96 numbers a column too; laid out in one row with a 1x3
    kernel and one CGRU a step it costs fewer operations a step and, on badd, reached the full
    training length in half the time of the paper's layout (docs/learning.md).
    DNGPU's diagonal gates (a third of the kept state moves one column left each step, a third
    right) then made badd first error-free at 41 at step 2,700 instead of ~5,500, and clean on 32
    random inputs at 401 from step 3,300. Its hard nonlinearities did not pay here: with them the
    curriculum stalled at length 11-12 (docs/learning.md).
    Arithmetic trains on operands up to 20 digits (length 41); sequence tasks on up to 20 symbols.
    """
    arithmetic = isinstance(get_task(task), ArithmeticTask)
    return TrainConfig(
        task=task,
        recipe="fast",
        model=ModelConfig(channels=96, height=1, kernel_height=1, layers_per_step=1, copies=1, diagonal_gates=True),
        curriculum=CurriculumConfig(start=5, min_length=3, max_length=41 if arithmetic else 20, check_every=50),
        lr=3e-3,
        grad_noise=0.0,
        eval_every=100,
        # Structured examples mixed into every batch: with 0.1, `reverse` passed random inputs at
        # 10x but failed every ascending and 40% of alternating ones; sequence tasks get 0.25.
        hard_share=0.1 if arithmetic else 0.25,
        # A badd model that passed 32 examples of each suite at 10x still failed 6% of 128 random ones.
        confirm_samples=128,
        # Clean at 10x is not clean at 100x: the rev2, duplicate, sort and badd models first made
        # with this recipe were not. Sequence tasks are cheap enough to check at 100x (length
        # 2,000, ~5 s an example on a CPU core) during training; arithmetic at 100x (4,001) costs
        # ~20 s an example, so it is checked at 50x (1,000-digit operands, length 2,001).
        reach_factor=50 if arithmetic else 100,
        reach_samples=8,
        # 8 a suite cannot see a 3-8% error rate (duplicate, rev2): 64 random ones, once, before stopping.
        reach_confirm_samples=64,
        # Checks at 10x stop at their first wrong answer, so most cost a second or two; a
        # confirmation that fails late costs minutes, and then training goes on before the next.
        long_check_share=0.5,
    )


def fast_1d(task: str) -> TrainConfig:
    """``fast`` without diagonal gates: what ``fast`` was before them, kept because on ``duplicate``
    it is the better one (solved at step 6,600, where with diagonal gates seed 0 still failed 84-91%
    of random inputs at 10x after 11,400 steps), and the shipped ``duplicate`` model was made with it."""
    config = fast(task)
    return replace(config, recipe="fast-1d", model=replace(config.model, diagonal_gates=False))


def fast_cdrop(task: str) -> TrainConfig:
    """``fast`` with DNGPU's dropout: 10% of every candidate instead of ``fast``'s dropout of the
    whole state after every step. With the state dropout ``fast``'s curriculum stalled on qadd and
    decimal add at 3-digit operands; with this one it learned both at the training length, seed 0
    error-free on qadd at 41 after 884 s of one CPU thread, and bmul after 3,455 s, each sooner
    than ``dngpu`` (docs/learning.md). On badd (seed 0) it was slower than ``fast`` to be
    error-free at 41 (step 5,300 against 2,200), so ``fast`` keeps its state dropout.
    """
    config = fast(task)
    return replace(config, recipe="fast-cdrop", model=replace(config.model, dropout=0.0, candidate_dropout=0.1))


# DNGPU's length bins (Freivalds & Liepins' released trainer): every step trains one batch at each.
DNGPU_BINS = (8, 12, 16, 20, 25, 28, 31, 36, 41)


def dngpu(task: str) -> TrainConfig:
    """``fast`` trained as DNGPU's released trainer trains binary multiplication: hard gates with a
    saturation cost, weights initialised at TensorFlow's default (Glorot) scale, dropout of 10% on
    every candidate instead of on the state, the update gates' bias at 0.7, no curriculum but a
    batch of 32 at each of nine length bins every step (each bin holding the lengths above the
    previous one, padded, and 5% shorter ones), AdaMax at 0.01 * 48 / m (0.005 for m = 96) with
    its second-moment decay annealed from 0.99 to 0.9995, cut x0.7 whenever 200 steps bring no
    lower loss, down to a 60th of it.

    On bmul its first version (exact-length bins, the state dropout of ``fast``, both gate biases
    0.5, a constant decay) learned what ``fast`` did not: seed 0 went from 34% of digits wrong at
    41 at step 1,200 to none at step 2,600 (docs/learning.md), where ``fast`` was still
    90-100% wrong on random inputs at 401 after 12,700 steps; it did not generalise to 10x. A step
    trains 9 x 32 examples, so it costs about nine ``fast`` steps. Sequence tasks get the bins
    scaled to their training length, 20.
    """
    config = fast(task)
    top = config.curriculum.max_length
    bins = tuple(sorted({max(config.curriculum.min_length, round(length * top / DNGPU_BINS[-1])) for length in DNGPU_BINS}))
    lr = 0.01 * 48 / config.model.channels
    return replace(
        config,
        recipe="dngpu",
        model=replace(config.model, gate="hard", init_scale=1.0, dropout=0.0, candidate_dropout=0.1, update_bias=0.7),
        curriculum=replace(
            config.curriculum, mode="bins", bins=bins, bin_fill="below", bin_shorter_share=0.05, start=top, check_every=200
        ),
        optimizer="adamax",
        beta2_schedule="dngpu",
        lr=lr,
        adam_eps=1e-8,
        lr_decay=0.7,
        lr_min=lr / 60,
        saturation_weight=0.01,
        eval_every=200,
    )


RECIPES: dict[str, Callable[[str], TrainConfig]] = {
    "fast": fast,
    "fast-1d": fast_1d,
    "fast-cdrop": fast_cdrop,
    "dngpu": dngpu,
    "paper": paper,
    "tiny": tiny,
}


def default_recipe(task: str) -> str:
    """The recipe ``neuralgpu train`` uses for ``task`` when none is named: the one that learned it here.

    ``fast`` learns binary addition and the sequence tasks. Beyond binary addition it stalls: on
    bmul it was never reliably error-free at 41 in 12,700 steps, and on qadd and decimal add its
    curriculum stopped at 3-digit operands. ``fast-cdrop`` learned all three at the training length,
    each sooner than ``dngpu`` (docs/learning.md); qmul and mul get it too, though neither
    has been learned (qmul from bmul's weights stalled at 4-digit operands). ``duplicate`` was solved by ``fast-1d`` and not by ``fast``.
    """
    if isinstance(get_task(task), ArithmeticTask) and task != "badd":
        return "fast-cdrop"
    return "fast-1d" if task == "duplicate" else DEFAULT_RECIPE


def build_config(task: str, recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """The recipe's config for ``task`` (None: ``default_recipe(task)``) with ``overrides``
    (TrainConfig fields; None = keep)."""
    recipe = recipe or default_recipe(task)
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    config = RECIPES[recipe](task)
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})


def train_command(config: TrainConfig) -> str:
    """The `neuralgpu train` command line that reproduces ``config``: its recipe, then the flags
    and ``--set`` fields that change it."""
    words = ["neuralgpu", "train", "--task", config.task, "--recipe", config.recipe, "--seed", str(config.seed)]
    if config.stages:
        words += ["--stages", ",".join(config.stages)]
    if config.init_from:
        words += ["--init-from", config.init_from]
    if config.max_steps != TrainConfig.max_steps:
        words += ["--max-steps", str(config.max_steps)]
    if config.time_budget is not None:
        words += ["--time-budget", f"{config.time_budget:g}"]
    recipe = RECIPES[config.recipe](config.task) if config.recipe in RECIPES else None
    # The flags that override a recipe's field (the reach ones only where the recipe has a reach check).
    overrides = (
        ("reach_samples", "--reach-samples", True),
        ("reach_confirm_samples", "--reach-confirm-samples", True),
        ("check_gap", "--check-gap", False),
        ("ema_decay", "--ema", False),
    )
    for name, flag, needs_reach in overrides:
        value = getattr(config, name)
        if recipe is not None and (recipe.reach_factor or not needs_reach) and value != getattr(recipe, name):
            words += [flag, str(value)]
    words += [flag for flag, on in (("--compile", config.compile), ("--bf16", config.bf16)) if on]
    if recipe is not None:  # what no flag covers: one --set per changed field
        covered = frozenset(
            {"task", "stages", "init_from", "recipe", "seed", "max_steps", "time_budget", "device", "compile", "bf16"}
        )
        covered |= {name for name, _, _ in overrides}
        words += [word for setting in differences(config, recipe, covered) for word in ("--set", setting)]
    return " ".join(words)


def source_command(card: dict[str, Any]) -> str | None:
    """The command that trained the model a card describes, so that a chain of runs (badd -> qadd
    -> add) can be repeated from the last one's card alone. A release's card has it; a snapshot's
    card has its run's config instead, unreadable (None) if the run is of another version."""
    if "command" in card:
        return str(card["command"])
    try:
        return train_command(train_config_from_dict(card["train_config"]))
    except (KeyError, TypeError, ValueError):
        return None
