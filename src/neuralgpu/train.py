"""Training: one loop for every recipe, on CPU or GPU, resumable, with a run directory.

``Trainer(config, run_dir).run()`` trains until the task is solved (zero errors on the frozen
evaluation sets at the maximum training length, at ``generalization_factor`` times it, and at
``reach_factor`` times it when that is set), the step limit, or the time budget. Each training
step draws its lengths from the curriculum, adds the relaxation's pull term, clips the gradient,
adds annealed gradient noise to it (for real: the noise is in ``p.grad`` when the optimizer
steps), and updates. A non-finite loss or gradient never reaches the weights: the step is
dropped and the run rolls back to its last good snapshot with a lower learning rate.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from neuralgpu.batches import draw_batch, draw_padded_batch, padded_to
from neuralgpu.checkpoint import (
    BEST_NAME,
    FORMAT,
    FORMAT_VERSION,
    RELEASE_NAME,
    SNAPSHOT_NAME,
    CheckpointError,
    load_snapshot,
    model_config_from_dict,
    save_release,
    save_snapshot,
)
from neuralgpu.checks import TRAINING_COST, SolvedCheck, describe_scores, ran_a_check, run_work
from neuralgpu.curriculum import Curriculum
from neuralgpu.distributed import Distributed
from neuralgpu.evaluate import EvalResult, evaluate, outcome
from neuralgpu.memory import release_large_blocks
from neuralgpu.model import ModelConfig, NeuralGPU, architecture_differences
from neuralgpu.models import cpu_threads
from neuralgpu.progress import LineClock, Progress, duration, plain_lines
from neuralgpu.recipes import source_command, train_command
from neuralgpu.rundir import RunWriter
from neuralgpu.solver import load_model
from neuralgpu.tasks import Batch, get_task, stable_seed
from neuralgpu.train_config import TrainConfig, resolve_device

# The trainer's scalar state that a resume snapshot carries.
SCALAR_STATE = (
    "step",
    "pull",
    "lr",
    "elapsed",
    "train_work",
    "train_error",
    "previous_window_loss",
    "window_loss",
    "window_steps",
    "rollbacks",
)


def adamax_beta2(step: int) -> float:
    """DNGPU's second-moment decay: 0.99 at first, its distance from 1 halving every 2,000 steps
    down to 0.0005, so the update's scale follows the early, fast-changing gradients closely."""
    return 1.0 - max(0.0005, 0.01 * 0.5 ** (step / 2000))


def gradient_noise_std(config: TrainConfig, step: int, train_error: float) -> float:
    return config.grad_noise * math.sqrt(max(step, 1) ** -0.55 * max(train_error, 0.0))


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A snapshot of a module's state on the CPU, detached from what training does next."""
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}


@dataclass
class TrainResult:
    solved: bool
    steps: int
    elapsed: float
    final: list[EvalResult]
    run_dir: Path | None


@dataclass
class StepStats:
    loss: float = 0.0
    sequence_errors: int = 0
    examples: int = 0
    digit_errors: int = 0
    digits: int = 0
    grad_norm: float = 0.0
    finite: bool = True


class Trainer:
    """Owns the model, optimizer, curriculum and RNG streams of one run."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path | None = None,
        resume: bool = False,
        progress: bool | None = None,
        distributed: Distributed | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        self.next_line = LineClock()  # off a terminal: when a plain progress line is next due
        self.dist = distributed or Distributed()
        self.device = resolve_device(config.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.stage_tasks = [get_task(name) for name in (*config.stages, config.task)]
        top = config.curriculum.max_length
        for task in self.stage_tasks:
            for factor in (1, config.generalization_factor, config.reach_factor or 1):
                task.check_length(task.scaled_length(top, factor))
        if config.model.checkpoint_steps and self.device.type == "cpu":
            release_large_blocks()
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model = self._build_model(config.model)
        self.initial_model: dict[str, Any] | None = None  # what init_from named, as its card says
        if config.init_from and not resume:
            self.initial_model = self._load_initial_weights(config.init_from)
        self.averaged = self._average()
        self.optimizer = self._make_optimizer()
        self.rng = np.random.default_rng(config.seed)  # the data: each rank its own
        self.length_rng = np.random.default_rng(stable_seed("lengths", config.seed))  # shared by all ranks
        self._seed_rank_streams(0)
        # Gradient noise must be the same on every rank, or the replicas drift apart: its own stream.
        self.noise_generator = torch.Generator(device=self.device).manual_seed(stable_seed("noise", config.seed))
        self.network = self._wrap()
        self.checks = SolvedCheck(config)
        self._enter_stage(0)
        self.step = 0
        self.pull = config.pull_start
        self.lr = config.lr
        self.elapsed = 0.0
        self.train_work = 0.0  # column-steps of training (run_work): the checks' share is of this and theirs
        self.train_error = 1.0  # running training sequence error, drives the gradient noise
        self.previous_window_loss = math.inf
        self.window_loss, self.window_steps = 0.0, 0
        self.rollbacks = 0
        self.solved = False
        # The state a check began from, while it runs. A run stopped during the check saves it with
        # the log line the check's results complete (check_due), and on resume runs the check first.
        self.before_check: dict[str, Any] | None = None
        # The steps since the last log line, whose averages the next line reports. In the snapshot,
        # so that a run stopped between two lines logs the same figures when resumed.
        self.window: list[StepStats] = []
        self.check_due: dict[str, Any] | None = None
        self.stop_requested = False  # a signal asked the run to stop at the end of this step
        if resume:
            if run_dir is None:
                raise ValueError("resuming needs a run directory")
            self._restore(load_snapshot(run_dir / SNAPSHOT_NAME))
            self._seed_rank_streams(self.step)
        self.last_good = self._snapshot_state()
        self.writer = None
        if run_dir is not None and self.dist.is_main:
            header = {"train_config": asdict(config), "world_size": self.dist.world_size}
            self.writer = RunWriter(run_dir, header, self.step if resume else None)

    # --- pieces ---------------------------------------------------------------------------

    def _enter_stage(self, stage: int) -> None:
        """Train on the stage's task from the start of a fresh length curriculum."""
        self.stage = stage
        self.task = self.stage_tasks[stage]
        curriculum = self.config.curriculum
        self.checks.enter(self.task)
        self.curriculum = Curriculum(replace(curriculum, min_length=max(curriculum.min_length, self.task.min_length)))
        self.previous_window_loss = math.inf  # a new task's loss is not comparable with the last one's
        if stage > 0:  # nor is its plateau: the decays earned on the last task do not carry over
            self.set_lr(self.config.lr)
            self.averaged = self._average()  # nor is the average of weights that learned another task

    @property
    def eval_lengths(self) -> tuple[int, int]:
        """The maximum training length, and the length of the checks at 10x."""
        return self.config.curriculum.max_length, self.checks.long

    @property
    def reach_length(self) -> int | None:
        return self.checks.reach

    @property
    def final_stage(self) -> bool:
        return self.stage == len(self.stage_tasks) - 1

    def _seed_rank_streams(self, step: int) -> None:
        """Ranks other than 0 draw their own data and dropout (rank 0 keeps the single-process streams).

        The snapshot holds rank 0's streams; on resume the others are derived afresh from the step.
        """
        if self.dist.rank > 0:
            self.rng = np.random.default_rng([self.config.seed, self.dist.rank, step])
            torch.manual_seed(stable_seed("dropout", self.config.seed, self.dist.rank, step))

    def _wrap(self) -> torch.nn.Module:
        """The module the training forward goes through: DistributedDataParallel under torchrun."""
        if not self.dist.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def _build_model(self, model_config: ModelConfig) -> NeuralGPU:
        model = NeuralGPU(model_config).to(self.device)
        if self.config.compile:
            model.compile_cells()
        return model

    def _load_initial_weights(self, spec: str) -> dict[str, Any]:
        """Copy the weights of the model ``spec`` names into the run's; returns where they came from."""
        with torch.random.fork_rng(devices=[]):  # building it draws weights: keep the run's streams as a fresh run's
            initial, card = load_model(spec)
        different = architecture_differences(initial.config, self.model.config)
        if different:
            raise CheckpointError(
                f"cannot start from {spec}: its model differs from this run's in {', '.join(different)}; "
                "choose a recipe with the same architecture, or match it with --set model.FIELD=VALUE"
            )
        self.model.load_state_dict(initial.state_dict())
        provenance = {key: card[key] for key in ("task", "recipe", "seed", "steps", "snapshot_step") if key in card}
        command = source_command(card)
        return {"from": spec, **provenance, **({"command": command} if command else {})}

    def _average(self) -> AveragedModel | None:
        """A fresh moving average of the weights, starting from the current ones (none without ema_decay)."""
        if not self.config.ema_decay:
            return None
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay))

    @property
    def judged(self) -> NeuralGPU:
        """The model the checks judge, the card describes and the release holds: the moving average
        of the weights when the run keeps one, else the weights themselves."""
        return self.model if self.averaged is None else self.averaged.module

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self.config.optimizer == "adamax":
            return torch.optim.Adamax(self.model.parameters(), lr=self.config.lr, eps=self.config.adam_eps)
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr, eps=self.config.adam_eps)

    def _tensors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(array).to(self.device) for array in (batch.inputs, batch.targets, batch.mask))  # type: ignore[return-value]

    def tie(self) -> None:
        """Average the relaxed copies into one and carry the optimizer's moments across."""
        replaced = self.model.tie_copies()
        for old, new in replaced.items():
            state = self.optimizer.state.pop(old, None)
            if state:
                self.optimizer.state[new] = {
                    key: value.mean(dim=0, keepdim=True) if torch.is_tensor(value) and value.dim() > 0 else value
                    for key, value in state.items()
                }
        for group in self.optimizer.param_groups:
            group["params"] = [replaced.get(parameter, parameter) for parameter in group["params"]]
        self.network = self._wrap()  # DDP holds the old parameters: wrap the tied model anew
        self.averaged = self._average()  # the average of the untied copies has the old shapes

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # --- one step -------------------------------------------------------------------------

    def train_step(self) -> StepStats:
        self.model.bf16_convolutions(self.config.bf16)
        try:
            return self._train_step()
        finally:
            self.model.bf16_convolutions(False)  # checks and the release run in float32

    def _train_step(self) -> StepStats:
        config, stats = self.config, StepStats()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        lengths = self.curriculum.lengths(self.length_rng)  # the same on every rank: decisions are shared
        counts: list[float] = []  # per length: sequence errors, examples; then loss, digit errors, digits
        loss_sum, digit_errors, digits = 0.0, 0, 0
        for index, length in enumerate(lengths):
            last = index == len(lengths) - 1
            example_lengths = self.curriculum.example_lengths(length, config.batch_size, self.rng)
            width = self.curriculum.width(length, self.length_rng)  # every rank pads alike
            if example_lengths is None:
                batch = padded_to(draw_batch(self.task, config.batch_size, length, self.rng, config.hard_share), width)
            else:
                batch = draw_padded_batch(self.task, example_lengths, length, self.rng, config.hard_share)
            inputs, targets, mask = self._tensors(batch)
            self.train_work += TRAINING_COST * run_work(*inputs.shape)
            # Under DDP, gradients are averaged once, in the last backward of the step.
            syncing = contextlib.nullcontext() if last or not self.dist.enabled else self.network.no_sync()
            with syncing:
                output = self.network(inputs, mask)
                loss = F.cross_entropy(output.logits[mask], targets[mask]) + config.saturation_weight * output.saturation
                total = loss / len(lengths)
                if last and not self.model.tied:
                    total = total + self.pull * self.model.pull_distance()
                total.backward()
            wrong = (output.logits.argmax(-1) != targets) & mask
            counts += [float(wrong.any(dim=1).sum()), float(len(batch))]
            loss_sum += float(loss.detach()) / len(lengths)
            digit_errors += int(wrong.sum())
            digits += int(mask.sum())
        counts = self.dist.sum(counts + [loss_sum, digit_errors, digits], self.device)
        for index, length in enumerate(lengths):
            self.curriculum.record(length, int(counts[2 * index]), int(counts[2 * index + 1]))
        stats.sequence_errors = int(sum(counts[0 : 2 * len(lengths) : 2]))
        stats.examples = int(sum(counts[1 : 2 * len(lengths) : 2]))
        stats.loss = counts[-3] / self.dist.world_size
        stats.digit_errors, stats.digits = int(counts[-2]), int(counts[-1])
        parameters = list(self.model.parameters())
        norm = torch.nn.utils.clip_grad_norm_(parameters, config.clip_norm)
        stats.grad_norm = float(norm)
        stats.finite = math.isfinite(stats.loss) and math.isfinite(stats.grad_norm)
        if not stats.finite:
            self.optimizer.zero_grad(set_to_none=True)
            return stats
        noise = gradient_noise_std(config, self.step + 1, self.train_error)
        if noise > 0:
            for parameter in parameters:
                if parameter.grad is not None:
                    draw = torch.randn(parameter.grad.shape, generator=self.noise_generator, device=self.device)
                    parameter.grad.add_(draw, alpha=noise)
        if config.beta2_schedule == "dngpu":
            for group in self.optimizer.param_groups:
                group["betas"] = (group["betas"][0], adamax_beta2(self.step))
        self.optimizer.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        self.step += 1
        self.train_error = 0.9 * self.train_error + 0.1 * stats.sequence_errors / stats.examples
        self.window_loss += stats.loss
        self.window_steps += 1
        return stats

    def decide(self) -> dict[str, Any]:
        """The curriculum decision with the pull schedule, tying and learning-rate decay."""
        events: dict[str, Any] = {}
        if self.curriculum.decide(self.step) and not self.model.tied:
            self.pull *= self.config.pull_growth
            if self.pull >= self.config.pull_tie:
                self.tie()
                events["tied"] = True
        window = self.window_loss / max(self.window_steps, 1)
        if window >= self.previous_window_loss:
            # Decay down to the floor; a rate a rollback already halved below the floor stays put.
            self.set_lr(max(self.lr * self.config.lr_decay, min(self.lr, self.config.lr_min)))
        self.previous_window_loss = window
        self.window_loss, self.window_steps = 0.0, 0
        return events

    def check_solved(self) -> dict[str, Any]:
        """Evaluate (on rank 0; every rank follows its verdict), tie a solved relaxed model, stop when solved."""
        record = self.dist.from_main(self._measure() if self.dist.is_main else None)
        if record.pop("next_stage", False):
            self._enter_stage(self.stage + 1)
            record.update(event="next stage", task=self.task.name)
        if record.pop("tie", False):
            self.tie()
            record["tied"] = True
        self.solved = bool(record.pop("solved", False))
        return record

    def _check_resumably(self, line: dict[str, Any], started: float) -> dict[str, Any]:
        """check_solved, keeping the state it began from and the log ``line`` its results complete.

        A check at the reach length can take an hour on a CPU. A run stopped during it saves that
        state, so that on resume these same weights are checked before training goes on (otherwise
        the candidate would never be judged) and the step's line is logged as if never stopped.
        The time budget stops a check the same way (``started``: when this step's clock began):
        the record says ``out_of_time`` and ``before_check`` stays, for the run's last snapshot.
        """
        self.before_check = {**self._snapshot_state(), "check_due": line}
        # A stop before the check's first part keeps what a resumed check carries, and nothing of the last check.
        self.checks.progress = dict(self.checks.carried)
        budget = self.config.time_budget
        self.checks.deadline = None if budget is None else started + budget - self.elapsed
        record = self.check_solved()
        if record.get("out_of_time"):
            return record
        self.before_check = None
        self.check_due = None
        return record

    def _measure(self) -> dict[str, Any]:
        """Errors at the maximum training length, and at 10x only when that length is error-free."""
        short = self.eval_lengths[0]
        record: dict[str, Any] = {}
        result = evaluate(self.judged, self.task, short, "random", self.config.eval_samples)
        record[f"eval_seq_error_{short}"] = result.sequence_error
        record[f"eval_digit_error_{short}"] = result.digit_error
        if not self.final_stage:  # an earlier stage only has to be learned at the training length
            record["next_stage"] = result.sequence_errors == 0 and self.curriculum.at_max
            return record
        if result.sequence_errors == 0 and self.curriculum.at_max:
            if not self.model.tied:  # a solved curriculum needs no more relaxation
                record["tie"] = True
                return record
            if not self.checks.due(self.step, self.train_work):
                record["long_check"] = "deferred"
                return record
            record.update(self.checks(self.judged, self.step))
            if not record.get("out_of_time") and self.checks.beat_best():
                record["best_check"] = self.checks.best_parts
                self._keep_best(result, bool(record["solved"]))
        return record

    def _keep_best(self, short: EvalResult, solved: bool) -> None:
        """Write the judged weights to ``best.safetensors``, with a card of this check's results
        (``short``, at the training length, then every part the check scored, the failing one up to
        its first wrong answer) and ``best_check``: the step and how many parts were clean."""
        if self.run_dir is None:
            return
        card = self.card([short, *self.checks.progress.values()])
        best = {"step": self.step, "clean_parts": self.checks.best_parts}
        save_release(self.run_dir / BEST_NAME, self.judged, {**card, "solved": solved, "best_check": best})

    # --- state ----------------------------------------------------------------------------

    def _snapshot_state(self) -> dict[str, Any]:
        state = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_config": asdict(self.model.config),
            "model": _cpu_copy(self.model),
            "averaged": None if self.averaged is None else _cpu_copy(self.averaged),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "curriculum": self.curriculum.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "length_rng": self.length_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "noise_rng": self.noise_generator.get_state(),
            "stage": self.stage,
            "checks": self.checks.state_dict(),
            "log_window": [asdict(stats) for stats in self.window],
            "initial_model": self.initial_model,
        }
        for name in SCALAR_STATE:
            state[name] = getattr(self, name)
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        model_config = model_config_from_dict(state["model_config"])
        if model_config.copies != self.model.config.copies:
            self.model = self._build_model(model_config)
            self.optimizer = self._make_optimizer()
            self.network = self._wrap()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.initial_model = state.get("initial_model")
        stage = int(state.get("stage", 0))
        if stage >= len(self.stage_tasks):
            raise ValueError(
                f"the snapshot is at stage {stage + 1} but this run has {len(self.stage_tasks)}: resume with the run's own --stages"
            )
        self._enter_stage(stage)
        self.averaged = self._average()  # a snapshot without an average (older, or none kept) restarts it here
        if self.averaged is not None and state.get("averaged") is not None:
            self.averaged.load_state_dict(state["averaged"])
        # A snapshot from before the checks had their own state counted their work in check_work.
        # Older snapshots: the checks' work at the top level, and the last check's step beside it.
        checks = state.get("checks", {"work": state.get("check_work", 0.0)})
        self.checks.load_state_dict({"last_step": state.get("last_check_step", 0), **checks})
        self.curriculum.load_state_dict(state["curriculum"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.length_rng.bit_generator.state = state["length_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.noise_generator.set_state(state["noise_rng"])
        for name in SCALAR_STATE:  # a snapshot from before a field existed keeps its start value
            setattr(self, name, type(getattr(self, name))(state.get(name, getattr(self, name))))
        self.set_lr(self.lr)
        self.check_due = state.get("check_due")
        self.window = [StepStats(**stats) for stats in state.get("log_window", [])]
        self.checks.carry(state.get("check_progress", []))

    def rollback(self) -> dict[str, Any]:
        """Back to the last good snapshot with half the learning rate (the divergence guard)."""
        rollbacks = self.rollbacks + 1
        self._restore(self.last_good)
        self.rollbacks = rollbacks
        self.set_lr(self.lr * 0.5)
        return {"event": "rollback", "rollbacks": rollbacks, "lr": self.lr}

    def save_snapshot(self) -> None:
        self.last_good = self._snapshot_state()
        if self.run_dir is not None and self.dist.is_main:
            save_snapshot(self.run_dir / SNAPSHOT_NAME, self.last_good)

    @contextlib.contextmanager
    def _stopped_by_signals(self):
        """Inside, SIGTERM (and Ctrl-C's SIGINT, where the process takes it) stop training with a
        resume snapshot: at the end of the current step, so the snapshot never holds half a step,
        or at once during a check, which may take hours and whose starting state is kept.

        `kill`, a scheduler's preemption and torchrun stopping its workers all send SIGTERM; a run
        started in the background from a script never sees Ctrl-C, which the shell ignores there.
        """
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_requested = True
            if self.before_check is not None:
                raise KeyboardInterrupt

        signals = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])
        previous = {number: signal.signal(number, request_stop) for number in signals}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def save_interrupted_snapshot(self) -> None:
        """The snapshot of a stopped run: the state before the check it was stopped in, if any,
        with the time spent so far (a check the budget stopped has used it: a resumed run that
        counted from before the check would get that time again)."""
        if self.before_check is None:
            self.save_snapshot()
        elif self.run_dir is not None and self.dist.is_main:
            stopped = {**self.before_check, "elapsed": self.elapsed, "check_progress": self.checks.progress_state()}
            save_snapshot(self.run_dir / SNAPSHOT_NAME, stopped)

    # --- the loop ---------------------------------------------------------------------------

    def log(self, record: dict[str, Any], bar: tqdm) -> None:
        if self.writer is not None:
            self.writer.log(record)
        if "event" in record:
            # stderr, like every progress line: stdout holds only the run's verdict and table.
            if self.quiet is not True:
                task = f" {record['task']}" if "task" in record else ""
                bar.write(f"step {record['step']}: {record['event']}{task} (learning rate now {self.lr:.2e})", file=sys.stderr)
        elif self.writes_lines and (ran_a_check(record) or self.next_line.due()):
            self.next_line.mark()
            scores = describe_scores(record)
            bar.write(
                f"step {record['step']:,} ({duration(record['elapsed'])}): length {record['length']}, "
                f"loss {record['loss']:.4f}, train error {record['train_seq_error']:.1%}"
                + (f"; {scores}" if scores else "")
                + ("; solved" if self.solved else ""),
                file=sys.stderr,
            )

    @property
    def writes_lines(self) -> bool:
        """Off a terminal the bar stays quiet; a line a check (and at most one a minute) says how it goes."""
        return self.quiet is None and plain_lines()

    @property
    def quiet(self) -> bool | None:
        """tqdm's ``disable`` for the trainer's bars and lines: on when asked (``progress=False``) and
        on every rank but the first; None: quiet when not on a terminal."""
        return True if self.progress is False or not self.dist.is_main else None

    def out_of_budget(self) -> bool:
        budget = self.config.time_budget
        return self.step >= self.config.max_steps or (budget is not None and self.elapsed >= budget)

    def run(self) -> TrainResult:
        config = self.config
        bar = tqdm(total=config.max_steps, initial=self.step, disable=self.quiet, unit="step", dynamic_ncols=True)
        with self._stopped_by_signals():
            try:
                if self.check_due:  # the last run was stopped during this step's check
                    self._resume_check(bar)
                while not self.solved and not self.out_of_budget():
                    started = time.perf_counter()
                    stats = self.train_step()
                    if not stats.finite:
                        self.log({"step": self.step, **self.rollback()}, bar)
                        continue
                    self.window.append(stats)
                    record: dict[str, Any] = {}
                    if self.step % config.curriculum.check_every == 0:
                        record.update(self.decide())
                    if self.step % config.eval_every == 0:
                        record.update(self._check_resumably(self._summary(self.window, record), started))
                    self.elapsed += time.perf_counter() - started
                    if config.time_budget is not None:  # every rank must stop at the same step
                        self.elapsed = self.dist.maximum(self.elapsed, self.device)
                    if record.get("out_of_time"):
                        break  # the budget ended inside this step's check: --resume finishes it and logs the step
                    if self.step % config.log_every == 0 or record or self.solved:
                        self.log(self._summary(self.window, record), bar)
                        self.window = []
                    if self.step % config.snapshot_every == 0:
                        self.save_snapshot()
                    bar.update(1)
                    bar.set_postfix(
                        length=self.curriculum.current, err=f"{self.train_error:.3f}", loss=f"{stats.loss:.3f}", refresh=False
                    )
                    if self.stop_requested:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                during = f" (from before the check at step {self.step}, which --resume runs first)" if self.before_check else ""
                bar.write(f"interrupted: saving a resume snapshot{during}", file=sys.stderr)
                self.save_interrupted_snapshot()
                raise
            finally:
                bar.close()
        if self.before_check is not None and self.dist.is_main:
            print(
                f"the time budget ran out during the check at step {self.step}; what it scored is saved, and "
                "--resume with a larger --time-budget finishes that check before training on",
                file=sys.stderr,
            )
        self.save_interrupted_snapshot()  # a plain snapshot, or the one of a check the budget stopped
        in_sync = self.dist.parameters_agree(self.model, self.device)
        if not in_sync:
            raise RuntimeError("the data-parallel replicas ended with different parameters; please report this as a bug")
        self.network = self.model  # no more synchronised updates: let go of the DDP wrapper and its reducer
        final = self.final_evaluation() if self.dist.is_main else []
        if self.run_dir is not None and self.dist.is_main:
            save_release(self.run_dir / RELEASE_NAME, self.judged, self.card(final))
        if self.writer is not None:
            finished = {"step": self.step, "event": "finished", "solved": self.solved, "elapsed": self.elapsed}
            if self.before_check is not None:
                finished["unfinished_check"] = self.step
            if self.dist.enabled:
                finished.update(world_size=self.dist.world_size, ranks_in_sync=in_sync)
            self.writer.log(finished)
            self.writer.close()
        return TrainResult(self.solved, self.step, self.elapsed, final, self.run_dir)

    def _resume_check(self, bar: tqdm) -> None:
        """Run the check the last run was stopped in, and log the step's line it completes."""
        assert self.check_due is not None
        started = time.perf_counter()
        line = self.check_due
        record = self._check_resumably(line, started)
        self.elapsed += time.perf_counter() - started
        if record.get("out_of_time"):
            return  # stopped again: the run ends with it still due, its progress carried further
        self.log({**line, "elapsed": self.elapsed, "check_resumed": True, **record}, bar)
        self.window = []  # the line just logged averaged it
        self.save_snapshot()  # stopped again, the run must not repeat the check: it may take hours

    def _summary(self, window: list[StepStats], extra: dict[str, Any]) -> dict[str, Any]:
        examples = sum(s.examples for s in window) or 1
        stage = {"task": self.task.name} if self.config.stages else {}  # a "next stage" event names the next one
        return {
            "step": self.step,
            **stage,
            "length": self.curriculum.current,
            "loss": sum(s.loss for s in window) / max(len(window), 1),
            "train_seq_error": sum(s.sequence_errors for s in window) / examples,
            "train_digit_error": sum(s.digit_errors for s in window) / max(sum(s.digits for s in window), 1),
            "grad_norm": sum(s.grad_norm for s in window) / max(len(window), 1),
            "lr": self.lr,
            "pull": self.pull,
            "tied": self.model.tied,
            "elapsed": self.elapsed,
            **extra,
        }

    def final_evaluation(self) -> list[EvalResult]:
        """The card's table: every judged suite at the training length, at 10x and at the reach length.

        A run that stops as solved has just scored most of it, error-free, in its solving check:
        the same frozen inputs and the same weights, so those results are reused, at the sizes its
        confirmations scored (an unsolved run's card gets the quick checks' sizes). So are the
        clean parts of an unsolved run's check at its last step (one the time budget stopped, or
        one that failed as the budget or the step limit ran out): the same weights too. What is left
        to score is announced and shows a progress bar on a terminal.
        """
        config = self.config
        scored = dict(self.checks.clean) if self.checks.last_step == self.step else {}

        def size(quick: int, confirmation: int) -> int:
            # A solved run's confirmation is on the card as it was scored. An unsolved one gets the
            # quick check's size: its confirmation failed, and scoring all of a 1,024-input one
            # again at length 2,000 would keep a CPU busy for ~85 minutes after the budget ran out.
            return max(quick, confirmation) if self.solved else quick

        long_samples = size(config.long_eval_samples, config.confirm_samples)  # every suite at 10x
        suites = self.checks.judged_suites()
        parts = [
            (length, suite, samples)
            for length, samples in zip(self.eval_lengths, (config.eval_samples, long_samples))
            for suite in suites
        ]
        if self.reach_length is not None:
            confirmed = size(config.reach_samples, config.reach_confirm_samples)  # random inputs only
            parts += [(self.reach_length, suite, confirmed if suite == "random" else config.reach_samples) for suite in suites]
        due = [part for part in parts if part not in scored]
        quiet = self.quiet
        if due and not quiet:
            # At the reach length this is minutes on a CPU, after the budget: say so, and show it go.
            lengths = ", ".join(str(length) for length in sorted({length for length, _, _ in due}))
            print(f"scoring the release's card: {len(due)} of its {len(parts)} parts, at lengths {lengths}", file=sys.stderr)
        with contextlib.closing(Progress(sum(samples for _, _, samples in due), "card", show=quiet is not True)) as shown:
            for length, suite, samples in due:
                shown.start(f"length {length} {suite}", samples)
                result = evaluate(self.judged, self.task, length, suite, samples, on_scored=shown.update)
                scored[length, suite, samples] = result
                shown.finish(outcome(result))
        return [scored[part] for part in parts]

    def command(self) -> str:
        """The `neuralgpu train` command line that reproduces this run's configuration."""
        return train_command(self.config)

    def card(self, final: list[EvalResult]) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "recipe": self.config.recipe,
            "seed": self.config.seed,
            "steps": self.step,
            "wall_clock_s": round(self.elapsed, 1),
            "hardware": torch.cuda.get_device_name() if self.device.type == "cuda" else f"cpu ({cpu_threads()})",
            "command": self.command(),
            "world_size": self.dist.world_size,
            "train_lengths": [self.config.curriculum.min_length, self.config.curriculum.max_length],
            "stages": list(self.config.stages),
            **({"initial_model": self.initial_model} if self.initial_model else {}),
            "solved": self.solved,
            "evaluation": [result.to_json() for result in final],
            "train_config": asdict(replace(self.config, model=self.model.config)),
        }
