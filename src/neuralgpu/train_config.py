"""A training run's configuration: ``TrainConfig``, every field a recipe sets or ``--set`` changes.

Recipes (``recipes.py``) fill it in; ``Trainer`` (``train.py``) runs it; a run directory's header
and a release's card keep it as a dict, which ``train_config_from_dict`` reads back.

It sits beside ``train.py`` rather than in it so that imports flow one way: ``recipes.py`` builds
TrainConfigs, and the trainer records the command that rebuilds its config from a recipe
(``recipes.train_command``); with the config in ``train.py`` the two would import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from neuralgpu.checkpoint import model_config_from_dict
from neuralgpu.curriculum import CurriculumConfig
from neuralgpu.model import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is built from; recipes (see ``recipes.py``) fill it in."""

    task: str = "badd"
    # Tasks learned first, in order, each until error-free at the full training length; then
    # ``task``. Price et al.'s curriculum across bases: stages=("badd", "qadd") before "add".
    stages: tuple[str, ...] = ()
    recipe: str = "paper"
    seed: int = 0
    # Start from these weights instead of a fresh initialisation: a shipped model's name, a release
    # file or a run directory (its average when it keeps one). Same architecture as ``model``; the
    # optimizer, curriculum and checks start afresh. A resumed run continues from its snapshot.
    init_from: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    batch_size: int = 32
    optimizer: Literal["adam", "adamax"] = "adam"
    # "constant": the optimizer's own second-moment decay (0.999); "dngpu": adamax_beta2's schedule.
    beta2_schedule: Literal["constant", "dngpu"] = "constant"
    lr: float = 1e-3
    adam_eps: float = 1e-4
    clip_norm: float = 1.0
    grad_noise: float = 1e-3  # noise std = grad_noise * sqrt(step^-0.55 * training sequence error)
    lr_decay: float = 0.98  # applied when the loss stops improving between curriculum decisions
    lr_min: float = 0.0  # the decay stops here (a rollback after a blow-up may still go below)
    pull_start: float = 5e-4  # relaxation pull; grows x pull_growth at each curriculum success
    pull_growth: float = 1.2
    pull_tie: float = 0.1  # average the copies into one once the pull reaches this
    saturation_weight: float = 0.0  # weight of the hard gates' saturation cost
    hard_share: float = 0.0  # share of every training batch drawn from the structured suites
    max_steps: int = 100_000
    time_budget: float | None = None  # seconds of training, summed over resumes
    log_every: int = 50
    eval_every: int = 200
    eval_samples: int = 128  # frozen eval set at the maximum training length
    generalization_factor: int = 10  # solved = zero errors at max length and this many times it
    long_eval_samples: int = 32
    # Solved also needs zero errors on `reach_samples` examples of every judged suite at this many
    # times the training length (0: no such check). Being clean at 10x comes and goes as training
    # continues, and so does reach: rev2 runs clean at 10x failed 25-94% of random inputs at 50x,
    # and, trained on, were clean at 50x at some checks and not at others (docs/learning.md: reach).
    reach_factor: int = 0
    reach_samples: int = 16
    # When everything else is clean, confirm on this many random examples at the reach length
    # (0: none). Eight a suite let through a duplicate model that failed 5 of 64 random inputs at
    # 100x and a rev2 one that failed 2 of 64; paid once, when a run is about to stop.
    reach_confirm_samples: int = 0
    # When the quick check at 10x is clean, confirm on this many examples per suite before
    # calling the run solved (0: the quick check decides). 32 clean examples can hide a 6% error rate.
    confirm_samples: int = 0
    # At most this share of the run's computation goes to checks at 10x (with the reach check and
    # the confirmation): a check that falls due beyond it waits for a later evaluation. Counted in
    # column-steps (see run_work), not seconds, so a run stops at the same step on any machine.
    # 1.0: every evaluation checks.
    long_check_share: float = 1.0
    # A check the share would defer still runs once this many steps have passed since the last
    # one that ran (0: the share alone decides). After one failed confirmation at the reach length
    # the share deferred every check of a duplicate run for 19,000 steps, while the decaying
    # learning rate froze the model: reach comes and goes, and a run that never looks misses it.
    check_gap: int = 0
    # Decay of an exponential moving average of the weights, updated every step (0: none). With it,
    # the checks, the card and the released model are the average, not the last step's weights:
    # rev2 runs' own weights, clean at 10x, failed 0-10 of 16 random inputs at 50x from one check
    # to the next, where their average (0.999) failed none (docs/learning.md: weight averaging).
    ema_decay: float = 0.0
    final_suites: Literal["random", "all"] = "all"  # what the release card records
    snapshot_every: int = 200
    device: str = "auto"
    # Run the CGRUs through torch.compile (NeuralGPU.compile_cells): the same training up to float
    # rounding, faster (README: Speed), but not bit for bit the eager run a shipped card records.
    compile: bool = False
    # The CGRUs' convolutions in bfloat16 during training steps (NeuralGPU.bf16_convolutions); the
    # state, gates, weights and optimizer stay float32, and every check, the card and the release
    # run in float32, so what a run is judged on is what a user runs.
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 0 or self.lr <= 0:
            raise ValueError("batch_size >= 1, max_steps >= 0 and lr > 0 are required")
        if not 0.0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min must be in [0, lr], got {self.lr_min} with lr {self.lr}")
        if self.optimizer not in ("adam", "adamax"):
            raise ValueError(f"optimizer must be 'adam' or 'adamax', got {self.optimizer!r}")
        if self.beta2_schedule not in ("constant", "dngpu"):
            raise ValueError(f"beta2_schedule must be 'constant' or 'dngpu', got {self.beta2_schedule!r}")
        if not 0.0 <= self.hard_share <= 1.0:
            raise ValueError(f"hard_share must be in [0, 1], got {self.hard_share}")
        if not 0.0 < self.long_check_share <= 1.0:
            raise ValueError(f"long_check_share must be in (0, 1], got {self.long_check_share}")
        if self.reach_factor and (self.reach_factor <= self.generalization_factor or self.reach_samples < 1):
            raise ValueError(
                f"reach_factor must be 0 or above generalization_factor ({self.generalization_factor}), with reach_samples >= 1;"
                f" got {self.reach_factor} and {self.reach_samples}"
            )
        if self.reach_confirm_samples < 0 or (self.reach_confirm_samples and not self.reach_factor):
            raise ValueError(f"reach_confirm_samples must be >= 0 and needs a reach_factor, got {self.reach_confirm_samples}")
        if self.check_gap < 0:
            raise ValueError(f"check_gap must be >= 0 steps, got {self.check_gap}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"time budget must be positive seconds, got {self.time_budget}")


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    data = dict(data)
    data["model"] = model_config_from_dict(data["model"])
    data["stages"] = tuple(data.get("stages", ()))
    curriculum = dict(data["curriculum"])
    curriculum["bins"] = tuple(curriculum.get("bins", ()))
    data["curriculum"] = CurriculumConfig(**curriculum)
    return TrainConfig(**data)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)
