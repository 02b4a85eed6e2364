"""Named training recipes: complete TrainConfigs for a task.

``paper`` is Kaiser & Sutskever's recipe as the released code ran it. Other recipes change only
what they name; ``build_config`` applies a person's overrides (seed, steps, budget, device) last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from neuralgpu.curriculum import CurriculumConfig
from neuralgpu.model import ModelConfig
from neuralgpu.train import TrainConfig

DEFAULT_RECIPE = "paper"


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


RECIPES: dict[str, Callable[[str], TrainConfig]] = {"paper": paper, "tiny": tiny}


def build_config(task: str, recipe: str = DEFAULT_RECIPE, **overrides: Any) -> TrainConfig:
    """The recipe's config for ``task`` with ``overrides`` (TrainConfig fields; None = keep)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    config = RECIPES[recipe](task)
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})
