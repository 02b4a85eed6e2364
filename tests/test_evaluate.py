"""Evaluation: batching never changes an answer, and an early exit keeps the verdict."""

import json
import platform
from dataclasses import replace

import numpy as np
import pytest
import torch

from neuralgpu.checks import TRAINING_COST, SolvedCheck, run_work
from neuralgpu.columns import NAMED_WRONG_RANGES, ColumnErrors
from neuralgpu.evaluate import (
    CPU_STATE_BYTES,
    EARLY_EXIT_BATCH,
    NAMED_WRONG_EXAMPLES,
    EvalResult,
    EvaluationStopped,
    OutOfMemoryMidEvaluation,
    continues,
    eval_batch,
    evaluate,
    evaluate_suites,
    format_table,
    inference_batch_size,
    predict,
    predictions,
    score,
    state_bytes_per_example,
)
from neuralgpu.memory import release_large_blocks, reuse_freed_blocks
from neuralgpu.model import ModelConfig, NeuralGPU
from neuralgpu.recipes import build_config
from neuralgpu.tasks import REGISTRY, Batch, get_task
from neuralgpu.tasks.sequence import SequenceTask
from neuralgpu.train import Trainer


def untrained(seed: int = 0) -> NeuralGPU:
    torch.manual_seed(seed)
    return NeuralGPU(ModelConfig(channels=8, height=2, copies=1))


def test_batches_of_any_size_give_the_same_predictions():
    model, task = untrained(), get_task("badd")
    batch = eval_batch(task, 21, "random", 20)
    whole = predict(model, batch.inputs, batch.mask)
    for size in (1, 3, 8):
        parts = list(predictions(model, batch.inputs, batch.mask, batch_size=size))
        assert [len(part) for part in parts][:-1] == [size] * (len(parts) - 1)
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_cpu_batches_stay_cache_sized_and_other_devices_fill_the_memory_budget():
    model, width, budget = untrained(), 401, 2**30
    state_bytes = model.config.channels * model.config.height * width * 4  # one example's state
    cpu = inference_batch_size(model, width, budget, torch.device("cpu"))
    assert 1 <= cpu and cpu * state_bytes <= CPU_STATE_BYTES < (cpu + 1) * state_bytes
    assert inference_batch_size(model, width, budget, torch.device("cuda")) > cpu
    assert inference_batch_size(model, 10**6, budget, torch.device("cpu")) == 1  # never zero


def test_early_exit_scores_a_prefix_up_to_the_first_error_and_keeps_the_verdict(trained_copy):
    task, length, samples = get_task("copy"), 24, 64
    batch = eval_batch(task, length, "random", samples)
    for model, wrong in ((untrained(), True), (trained_copy[1].model, False)):
        full = evaluate(model, task, length, "random", samples)
        early = evaluate(model, task, length, "random", samples, stop_at_error=True)
        assert (early.sequence_errors > 0) == (full.sequence_errors > 0) == wrong
        if not wrong:
            assert early == full  # a clean model is scored on every example
            continue
        assert early.samples < samples and early.samples % EARLY_EXIT_BATCH == 0
        # The counts are those of exactly the examples scored, and only the last batch had an error.
        prefix = Batch(batch.inputs[: early.samples], batch.targets[: early.samples])
        predicted = predict(model, prefix.inputs, prefix.mask)
        assert score(prefix, predicted) == (early.sequence_errors, early.digit_errors, early.digits)
        before = Batch(prefix.inputs[:-EARLY_EXIT_BATCH], prefix.targets[:-EARLY_EXIT_BATCH])
        assert score(before, predicted[:-EARLY_EXIT_BATCH])[0] == 0


def test_an_early_exit_puts_the_model_back_in_training_mode():
    model, task = untrained(), get_task("copy")
    model.train()
    assert evaluate(model, task, 24, "random", 64, stop_at_error=True).sequence_errors > 0
    assert model.training


def test_a_failed_check_logs_the_leftmost_column_its_wrong_answers_got_wrong():
    """Errors that begin at one column at every length show a model tied to its training lengths:
    the check's record names that column, so metrics.jsonl shows it while the run trains."""
    model, config, task = untrained(), build_config("copy", "tiny", seed=0), get_task("copy")
    checks = SolvedCheck(config)
    checks.enter(task)
    long, samples = checks.long, config.long_eval_samples
    record = checks(model)
    assert not record["solved"]
    # The oracle: the examples the check scored (up to its first wrong batch), predicted afresh.
    scored = evaluate(model, task, long, "random", samples, stop_at_error=True).samples
    batch = eval_batch(task, long, "random", samples)
    predicted = predict(model, batch.inputs[:scored], batch.mask[:scored])
    wrong = (predicted != batch.targets[:scored]) & batch.mask[:scored]
    assert record[f"eval_first_wrong_column_{long}"] == np.flatnonzero(wrong.any(axis=0))[0]
    # A structured part names its column beside its error, for the failing suite only.
    errors, failed = checks.until_first_failure(model, long, ["constant", "random"], 16, "eval_seq_error")
    assert failed == "constant"
    assert set(errors) == {f"eval_seq_error_{long}_constant", f"eval_first_wrong_column_{long}_constant"}
    assert 0 <= errors[f"eval_first_wrong_column_{long}_constant"] < long


def test_a_column_profile_counts_each_columns_wrong_examples_over_every_batch():
    model, task, width, samples = untrained(), get_task("badd"), 21, 20
    budget = 3 * state_bytes_per_example(model, width)  # batches of 3: the profile adds up seven of them
    profiles: dict[tuple[int, str], ColumnErrors] = {}

    def seen(length: int, suite: str, wrong: np.ndarray) -> None:
        profiles.setdefault((length, suite), ColumnErrors(task.name, length, suite)).add(wrong)

    results = evaluate_suites(model, task, [width], ["random", "ones"], samples, memory_budget=budget, on_wrong=seen)
    for result in results:
        batch = eval_batch(task, width, result.suite, samples)
        wrong = (predict(model, batch.inputs, batch.mask) != batch.targets) & batch.mask  # the oracle, in one pass
        profile = profiles[width, result.suite]
        assert profile.examples == samples and profile.wrong.tolist() == wrong.sum(axis=0).tolist()
        assert profile.wrong.sum() == result.digit_errors > 0


def test_a_column_profile_names_right_and_wrong_runs_of_columns():
    profile = ColumnErrors("badd", 10, "random")
    wrong = np.zeros((4, 10), dtype=bool)
    wrong[0, 3] = wrong[1:, 4] = wrong[2, 8] = True  # column 3 on 1 of 4, column 4 on 3 of 4, column 8 on 1
    profile.add(wrong[:2])
    profile.add(wrong[2:])
    assert profile.ranges() == [(0, 2, False), (3, 4, True), (5, 7, False), (8, 8, True), (9, 9, False)]
    assert profile.summary() == (
        "badd 10 random (4 examples): columns 0-2 right; 3-4 wrong on 25%-75% of examples (mean 50%); "
        "5-7 right; 8 wrong on 25% of examples; 9 right"
    )
    scattered = ColumnErrors("badd", 42, "random")
    scattered.add((np.arange(42) % 2 == 1)[None, :] & (np.arange(42) < 40))  # odd columns to 39: 20 wrong runs
    assert scattered.summary().endswith(
        f"; 16 right; {20 - NAMED_WRONG_RANGES} more wrong runs in columns 17-39 (--json counts every column); 40-41 right"
    )
    assert scattered.summary().count("wrong on") == NAMED_WRONG_RANGES
    scattered.wrong[19:40] = 0  # odd columns to 17: one wrong run past those named
    assert scattered.summary().endswith("; 16 right; 1 more wrong run in column 17 (--json counts every column); 18-41 right")


def test_checks_at_ten_times_wait_while_they_have_taken_more_than_their_share(trained_copy):
    _, trained = trained_copy
    config = replace(trained.config, long_check_share=0.25)
    trainer = Trainer(config, None, progress=False)
    trainer.model.load_state_dict(trained.model.state_dict())
    trainer.curriculum.current = config.curriculum.max_length
    long = trainer.eval_lengths[1]
    trainer.train_work, trainer.checks.work = 70.0, 30.0  # 30% of the work went to checks: wait
    record = trainer._measure()
    assert record["long_check"] == "deferred" and f"eval_seq_error_{long}" not in record
    trainer.train_work, trainer.checks.work = 80.0, 20.0  # 20%: check, and count what it ran
    record = trainer._measure()
    assert f"eval_seq_error_{long}" in record and "long_check" not in record
    scored = trainer.checks.work - 20.0
    assert scored >= run_work(EARLY_EXIT_BATCH, long) and scored % (long * long) == 0


def test_a_check_stopped_late_goes_on_from_the_parts_it_scored(trained_copy):
    """Resumed, a stopped check scores only what it had not: the verdict, errors and work equal an
    unstopped check's (a 1,024-input confirmation at 100x takes hours on a CPU)."""
    _, trained = trained_copy
    config = replace(trained.config, long_eval_samples=16, confirm_samples=40)  # parts of several batches
    model, calls = trained.judged, []

    def fresh_check() -> SolvedCheck:
        checks = SolvedCheck(config)
        checks.enter(trained.task)
        return checks

    def count(module, inputs, output):
        calls.append(len(inputs[0]))
        if len(calls) == stop_at:
            raise KeyboardInterrupt  # what Ctrl-C or SIGTERM raises in a training run

    hook, stop_at = model.register_forward_hook(count), 0
    try:
        whole = fresh_check()
        record = whole(model, step=7)
        assert record["solved"] and len(whole.clean) >= 2  # every part ran clean: the stop lands in the last
        every_call, stopped_in = list(calls), len(calls) - 2  # the second-to-last batch of the whole check
        calls[:], stop_at = [], stopped_in
        stopped = fresh_check()
        with pytest.raises(EvaluationStopped):
            stopped(model, step=7)
        parts = stopped.progress_state()
        assert sum(part["samples"] for part in parts) == sum(every_call[: stopped_in - 1])  # the stopped batch is not kept
        calls[:], stop_at = [], 0
        resumed = fresh_check()
        resumed.carry(parts)
        assert resumed(model, step=7) == record
        assert calls == every_call[stopped_in - 1 :]  # only the stopped batch and the one after it ran again
        assert (resumed.work, resumed.clean, resumed.carried) == (whole.work, whole.clean, {})
    finally:
        hook.remove()


def test_a_check_gap_runs_a_check_the_share_would_defer(trained_copy):
    _, trained = trained_copy
    config = replace(trained.config, long_check_share=0.25, check_gap=500)
    trainer = Trainer(config, None, progress=False)
    trainer.model.load_state_dict(trained.model.state_dict())
    trainer.curriculum.current = config.curriculum.max_length
    long = trainer.eval_lengths[1]
    trainer.train_work, trainer.checks.work = 50.0, 50.0  # half the work went to checks: over the share
    trainer.step, trainer.checks.last_step = 1400, 1000  # 400 steps since the last check: wait
    assert trainer._measure()["long_check"] == "deferred" and trainer.checks.last_step == 1000
    trainer.step = 1500  # 500 steps: overdue, so it runs whatever the share says
    record = trainer._measure()
    assert f"eval_seq_error_{long}" in record and "long_check" not in record
    assert trainer.checks.last_step == 1500 and trainer.checks.work > 50.0
    trainer.step = 1600  # the gap counts from the check that just ran
    assert trainer._measure()["long_check"] == "deferred"


def test_training_counts_its_work_in_column_steps_whatever_the_clock_says():
    trainer = Trainer(build_config("copy", "tiny", seed=0), None, progress=False)
    trainer.curriculum.current = 9
    lengths_rng = np.random.default_rng()
    lengths_rng.bit_generator.state = trainer.length_rng.bit_generator.state  # the step's own draw
    lengths = trainer.curriculum.lengths(lengths_rng)
    trainer.train_step()
    batch = trainer.config.batch_size
    assert trainer.train_work == TRAINING_COST * sum(run_work(batch, length) for length in lengths)
    assert trainer.checks.work == 0.0


def test_a_result_names_its_first_wrong_examples_by_their_place_in_the_frozen_set():
    # An untrained model on 2-symbol reversals: most answers wrong, a few right by chance.
    model, task, samples = untrained(), get_task("reverse"), 64
    batch = eval_batch(task, 2, "random", samples)
    wrong_rows = np.flatnonzero(((predict(model, batch.inputs, batch.mask) != batch.targets) & batch.mask).any(axis=1))
    assert NAMED_WRONG_EXAMPLES < len(wrong_rows) < samples  # a mix, and more wrong than are named
    result = evaluate(model, task, 2, "random", samples, memory_budget=60_000)  # several batches
    assert result.wrong_examples == tuple(wrong_rows[:NAMED_WRONG_EXAMPLES])
    assert result.wrong_examples != tuple(range(NAMED_WRONG_EXAMPLES))  # right answers were skipped
    early = evaluate(model, task, 2, "random", samples, stop_at_error=True)
    assert early.wrong_examples == tuple(row for row in wrong_rows if row < early.samples)[:NAMED_WRONG_EXAMPLES]
    assert f"random at 2: {', '.join(map(str, result.wrong_examples))}" in format_table([result])
    assert "wrong examples" not in format_table([replace(result, sequence_errors=0, wrong_examples=())])


def test_a_result_keeps_the_leftmost_column_any_example_got_wrong():
    # Untrained: wrong answers in many columns, found batch by batch.
    model, task, samples = untrained(), get_task("badd"), 40
    batch = eval_batch(task, 9, "random", samples)
    wrong = (predict(model, batch.inputs, batch.mask) != batch.targets) & batch.mask
    result = evaluate(model, task, 9, "random", samples, memory_budget=60_000)  # several batches
    assert result.first_wrong_column == np.flatnonzero(wrong.any(axis=0))[0]
    assert f"{result.first_wrong_column:>8}" in format_table([result]).splitlines()[2]
    for column in (0, 3):  # 0 is a column, not "none"
        kept = replace(result, first_wrong_column=column)
        assert EvalResult.from_json(json.loads(json.dumps(kept.to_json()))) == kept
    right = replace(result, sequence_errors=0, digit_errors=0, wrong_examples=(), first_wrong_column=None)
    assert "first_wrong_column" not in right.to_json() and format_table([right]).splitlines()[2].endswith(" -")
    # A prefix recorded before the column was kept has errors somewhere unknown: so is the whole.
    prefix = evaluate(model, task, 9, "random", samples, stop_at_error=True)
    unknown = EvalResult.from_json({k: v for k, v in prefix.to_json().items() if k != "first_wrong_column"})
    assert unknown.sequence_errors and evaluate(model, task, 9, "random", samples, after=unknown).first_wrong_column is None


def test_every_scored_example_reaches_the_progress_callback():
    model, task, counts = untrained(), get_task("copy"), []
    result = evaluate(model, task, 24, "random", 20, memory_budget=60_000, on_scored=counts.append)
    assert len(counts) > 1 and sum(counts) == result.samples == 20


@pytest.mark.parametrize("name", sorted(name for name, info in REGISTRY.items() if isinstance(info.task, SequenceTask)))
def test_a_random_sequence_set_grows_by_appending_so_a_smaller_one_is_its_prefix(name):
    # What lets a recorded 256 of the shipped sequence models be continued to 1,024 (eval --extend).
    task = get_task(name)
    length = max(task.min_length, 24)
    small, large = eval_batch(task, length, "random", 5), eval_batch(task, length, "random", 13)
    assert np.array_equal(small.inputs, large.inputs[:5]) and np.array_equal(small.targets, large.targets[:5])
    assert continues(task, length, "random", evaluate(untrained(), task, length, "random", 5), 13)


def test_a_set_drawn_a_column_at_a_time_is_continued_only_within_itself():
    model, task = untrained(), get_task("badd")
    whole = evaluate(model, task, 9, "random", 40)
    early = evaluate(model, task, 9, "random", 40, stop_at_error=True)  # untrained: wrong in its first batch
    assert (early.samples, early.set_size, whole.set_size) == (EARLY_EXIT_BATCH, 40, 0)
    assert "set_size" in early.to_json() and "set_size" not in whole.to_json()
    assert evaluate(model, task, 9, "random", 40, after=early) == whole
    smaller_set = evaluate(model, task, 9, "random", EARLY_EXIT_BATCH)
    assert not continues(task, 9, "random", smaller_set, 40) and not continues(task, 9, "random", early, 41)
    with pytest.raises(ValueError, match="a column at a time"):
        evaluate(model, task, 9, "random", 40, after=smaller_set)


def test_going_on_from_an_earlier_prefix_gives_the_whole_evaluation():
    # Untrained, so errors to count and examples to name on both sides of the seam.
    model, task = untrained(), get_task("reverse")
    whole = evaluate(model, task, 2, "random", 48, memory_budget=60_000)
    assert whole.sequence_errors > NAMED_WRONG_EXAMPLES // 2
    for first in (0, 5, 20, 48):
        prefix = evaluate(model, task, 2, "random", first, memory_budget=60_000)
        assert evaluate(model, task, 2, "random", 48, memory_budget=60_000, after=prefix) == whole
    assert evaluate(model, task, 2, "random", 20, after=whole) == whole  # more than asked for: nothing to score
    with pytest.raises(ValueError, match="cannot continue"):
        evaluate(model, task, 3, "random", 48, after=whole)


@pytest.mark.parametrize(
    "stop, raised",
    [
        (KeyboardInterrupt, EvaluationStopped),  # what Ctrl-C, or SIGTERM under `neuralgpu eval`, raises mid-batch
        (torch.cuda.OutOfMemoryError, OutOfMemoryMidEvaluation),  # a GPU shared with other work
    ],
)
def test_a_stopped_evaluation_hands_back_what_it_finished_and_the_prefix_it_scored(stop, raised):
    model, task, calls = untrained(), get_task("reverse"), []

    def stop_at_the_sixth_batch(module, inputs, output):
        calls.append(len(inputs[0]))
        if len(calls) == 6:
            raise stop("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.register_forward_hook(stop_at_the_sixth_batch)
    with pytest.raises(raised) as stopped:
        evaluate_suites(model, task, [2, 3], ["random", "constant"], 100, memory_budget=60_000)  # batches of 46
    finished, partial = stopped.value.results[:-1], stopped.value.results[-1]
    # Out of memory, it is still torch's error, with torch's message, for whoever catches that.
    assert isinstance(stopped.value, stop) and (stop is KeyboardInterrupt or "Tried to allocate" in str(stopped.value))
    assert [(result.length, result.suite, result.samples) for result in finished] == [(2, "random", 100)]
    assert (partial.length, partial.suite, partial.samples, partial.set_size) == (
        2,
        "constant",
        92,
        100,
    )  # the stopped batch is not counted
    model._forward_hooks.clear()
    assert finished[0] == evaluate(model, task, 2, "random", 100, memory_budget=60_000)
    # reverse's constant sets grow by appending, so the first 92 of 100 are the set of 92.
    assert replace(partial, set_size=0) == evaluate(model, task, 2, "constant", 92, memory_budget=60_000)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc settings apply to glibc only")
def test_glibc_accepts_both_malloc_settings_and_answers_do_not_change():
    # mallopt returns 0 for a value it rejects (an mmap threshold above its ceiling, for one),
    # which would leave glibc's defaults in place without a word: both settings must be taken.
    model, task = untrained(), get_task("copy")
    batch = eval_batch(task, 60, "random", 8)
    before = predict(model, batch.inputs, batch.mask)
    try:
        assert reuse_freed_blocks()
        np.testing.assert_array_equal(predict(model, batch.inputs, batch.mask), before)
    finally:
        assert release_large_blocks()  # as a checkpointing trainer would set it


def test_extra_steps_run_the_model_longer_than_its_input_is_wide():
    """Padding an example with masked columns runs the model that many more steps: the shipped
    `copy` holds its answer (a fixed point), the shipped `reverse` reads its answer off at step n."""
    from neuralgpu.solver import load_model

    samples, length, extra = 16, 20, 10
    for name, holds in (("copy", True), ("reverse", False)):
        model, _ = load_model(name)
        task = get_task(name)
        result = evaluate(model, task, length, "random", samples, extra_steps=extra)
        batch = eval_batch(task, length, "random", samples)
        width = batch.inputs.shape[1]
        padded = np.pad(batch.inputs, ((0, 0), (0, extra)))  # by hand: the pad token is 0
        mask = np.pad(batch.mask, ((0, 0), (0, extra)))
        wrong = (predict(model, padded, mask)[:, :width] != batch.targets) & batch.mask
        assert result.sequence_errors == int(wrong.any(axis=1).sum()) and result.digit_errors == int(wrong.sum())
        assert result.extra_steps == extra and result.samples == samples
        assert evaluate(model, task, length, "random", samples).sequence_errors == 0
        assert (result.sequence_errors == 0) == holds
        assert EvalResult.from_json(result.to_json()) == result
    assert "extra_steps" not in evaluate(model, task, 4, "random", 2).to_json()  # plain results are as before
    assert "random +10" in format_table([result])
    with pytest.raises(ValueError, match="continued"):
        evaluate(model, task, length, "random", samples, extra_steps=extra, after=result)


def test_chosen_examples_score_as_they_do_in_the_whole_set_and_keep_their_indices():
    # An untrained model on 2-symbol reversals gets some right and most wrong: choose from both.
    model, task, samples = untrained(), get_task("reverse"), 64
    batch = eval_batch(task, 2, "random", samples)
    wrong = (predict(model, batch.inputs, batch.mask) != batch.targets) & batch.mask
    wrong_rows, right_rows = np.flatnonzero(wrong.any(axis=1)), np.flatnonzero(~wrong.any(axis=1))
    chosen = (int(wrong_rows[-1]), int(right_rows[0]), int(wrong_rows[0]))  # any order, named as given
    result = evaluate(model, task, 2, "random", samples, examples=chosen)
    assert result.samples == 3 and result.sequence_errors == 2
    assert result.digit_errors == int(wrong[list(chosen)].sum()) and result.digits == int(batch.mask[list(chosen)].sum())
    assert result.wrong_examples == (chosen[0], chosen[2]) and result.examples == chosen and result.set_size == samples
    assert EvalResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert "examples" not in evaluate(model, task, 2, "random", 4).to_json()  # plain results are as before
    table = format_table([result])
    assert f"random at 2: {chosen[0]}, {chosen[2]}" in table
    assert table.endswith(f"scored only examples {', '.join(map(str, chosen))} of each frozen set of {samples}")
    with pytest.raises(ValueError, match="not in a set of 64"):
        evaluate(model, task, 2, "random", samples, examples=(64,))
    with pytest.raises(ValueError, match="scored whole and afresh"):
        evaluate(model, task, 2, "random", samples, examples=chosen, stop_at_error=True)


def test_answers_are_computed_in_full_float32_and_the_setting_is_put_back(monkeypatch, tf32_allowed):
    """A GPU would otherwise run the convolutions in TF32, PyTorch's default for cuDNN; an answer or
    a recorded verification must not depend on that (neuralgpu.precision)."""
    model = untrained()
    seen = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording_forward)
    batch = eval_batch(get_task("copy"), 12, "random", 5)
    predicted = predict(model, batch.inputs, batch.mask, memory_budget=2 * state_bytes_per_example(model, 12))
    assert predicted.shape == batch.inputs.shape
    assert seen == [(False, False)] * 3  # three batches of at most two, each without TF32
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32  # and the caller's setting back
