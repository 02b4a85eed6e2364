"""Every generator against its independent oracle, determinism, notation and structured suites."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralgpu.tasks import PAD, REGISTRY, TaskInputError, get_task, structured_suites, task_names

REQUIRED = {"badd", "bmul", "qadd", "qmul", "add", "mul", "copy", "reverse", "duplicate", "sort", "kvsort", "rev2", "incr"}
REQUIRED |= {"left-shift", "right-shift", "search"}  # REFERENCE.md's list, beyond the paper's headline tasks


def test_every_required_task_is_registered_with_a_worked_example():
    assert REQUIRED <= set(task_names())
    for name, info in REGISTRY.items():
        assert info.task.oracle(info.example) == info.answer, name
        assert info.summary and info.example


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(REQUIRED)), length=st.integers(3, 70), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_generator_agrees_with_oracle(name, length, seed, data):
    task = get_task(name)
    suite = data.draw(st.sampled_from(task.suites))
    batch = task.sample(6, length, np.random.default_rng(seed), suite)
    assert batch.inputs.shape == batch.targets.shape
    assert batch.inputs.shape[1] == task.width(length) <= length
    width = batch.inputs.shape[1]
    for inputs, targets in zip(batch.inputs, batch.targets):
        text = task.input_text(inputs)
        assert task.answer_text(targets, width) == task.oracle(text)
        # The person's notation reads back to the same tokens (operands keep their leading zeros).
        np.testing.assert_array_equal(task.parse(text), inputs)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_same_seed_same_batch_and_other_seed_other_batch(name):
    task = get_task(name)
    first = task.sample(16, 21, np.random.default_rng(7))
    again = task.sample(16, 21, np.random.default_rng(7))
    other = task.sample(16, 21, np.random.default_rng(8))
    np.testing.assert_array_equal(first.inputs, again.inputs)
    np.testing.assert_array_equal(first.targets, again.targets)
    assert not np.array_equal(first.inputs, other.inputs)


def test_generators_leave_the_global_rng_alone():
    np.random.seed(3)
    expected = np.random.random()
    np.random.seed(3)
    get_task("bmul").sample(8, 21, np.random.default_rng(0))
    assert np.random.random() == expected


@pytest.mark.parametrize("name,k,width", [("badd", 20, 21), ("bmul", 20, 40), ("add", 5, 6), ("mul", 5, 10)])
def test_arithmetic_targets_are_padded_to_full_width(name, k, width):
    task = get_task(name)
    batch = task.sample(64, 2 * k + 1, np.random.default_rng(0), "zeros")
    assert (batch.targets[:, :width] != PAD).all()  # explicit zero digits, not padding
    assert (batch.targets[:, width:] == PAD).all()
    assert batch.mask.all()  # every column is scored


def test_binary_multiplication_at_2000_bits():
    task = get_task("bmul")
    batch = task.sample(8, 4001, np.random.default_rng(1))
    assert batch.inputs.shape == (8, 4001)
    for inputs, targets in zip(batch.inputs, batch.targets):
        assert task.answer_text(targets, 4001) == task.oracle(task.input_text(inputs))


def test_decimal_results_beyond_pythons_string_limit():
    task = get_task("mul")
    text = "9" * 2500 + "*" + "9" * 2500
    expected = "9" * 2499 + "8" + "0" * 2499 + "1"
    assert task.oracle(text) == expected
    batch = task.sample(1, 5001, np.random.default_rng(0), "ones")
    assert task.answer_text(batch.targets[0], 5001) == expected


def operands(task, batch):
    k = (batch.inputs.shape[1] - 1) // 2
    return batch.inputs[:, :k] - 1, batch.inputs[:, k + 1 :] - 1


@pytest.mark.parametrize("name", ["badd", "bmul", "qadd", "add", "mul"])
def test_structured_suites_have_their_structure(name):
    task = get_task(name)
    rng = np.random.default_rng(0)
    k, top = 30, task.base - 1
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "carry"))
    assert (a[:, : k // 2] == top).all() and (b[:, 1:] == 0).all() and (b[:, 0] > 0).all()
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "zeros"))
    assert (a != 0).mean() < 0.2 and (b != 0).mean() < 0.2
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "ones"))
    assert (a == top).all() and (b == top).all()
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "alternating"))
    assert (a[:, ::2] == a[:, :1]).all() and (a[:, 1::2] != a[:, :1]).all()
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "zero_operand"))
    assert ((a == 0).all(axis=1) | (b == 0).all(axis=1)).all()
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "unequal"))
    assert ((a[:, k // 4 :] == 0).all(axis=1) | (b[:, k // 4 :] == 0).all(axis=1)).all()
    a, b = operands(task, task.sample(50, 2 * k + 1, rng, "symmetric"))
    assert (a == b).all()
    products = {"product_run"} if task.operator == "*" else set()
    assert (
        set(structured_suites(task))
        == {"carry", "zeros", "ones", "alternating", "zero_operand", "unequal", "symmetric"} | products
    )


def longest_run(digits: np.ndarray, digit: int) -> int:
    longest = current = 0
    for value in digits:
        current = current + 1 if value == digit else 0
        longest = max(longest, current)
    return longest


@pytest.mark.parametrize("name", ["bmul", "qmul", "mul"])
def test_product_run_suite_makes_products_with_long_runs_of_the_largest_digit(name):
    task = get_task(name)
    k = 40
    batch = task.sample(200, 2 * k + 1, np.random.default_rng(0), "product_run")
    people = [task.input_text(row) for row in batch.inputs]
    answers = [task.answer_text(row, 2 * k + 1) for row in batch.targets]
    assert answers == [task.oracle(text) for text in people]
    runs = np.array([longest_run(row[: 2 * k] - 1, task.base - 1) for row in batch.targets])
    # Half of a run of at least k/2 digits lies above column k, where the product keeps all but
    # one digit of it; random products of 2k digits rarely hold a run of even 8 (binary).
    assert runs.min() >= k // 4 - 1 and np.median(runs) >= k // 2
    random_runs = [
        longest_run(row[: 2 * k] - 1, task.base - 1) for row in task.sample(200, 2 * k + 1, np.random.default_rng(0)).targets
    ]
    assert np.median(random_runs) < k // 4
    assert "product_run" not in get_task("badd").suites


def test_shifts_rotate_as_the_released_code_s_left_shift_does():
    # The released left-shift's output i is input i - 1 (Python's index -1 wraps the last symbol round).
    assert get_task("left-shift").oracle("0123") == "3012"
    assert get_task("right-shift").oracle("0123") == "1230"
    for name in ("left-shift", "right-shift"):
        batch = get_task(name).sample(8, 9, np.random.default_rng(0))
        assert sorted(batch.inputs[0]) == sorted(batch.targets[0])  # a permutation of the input


def test_search_answers_the_first_match_in_column_0_and_pads_the_rest():
    task = get_task("search")
    assert task.oracle("1031121") == "0"  # keys 1, 3, 1: the first 1 holds 0, the second 2
    batch = task.sample(64, 21, np.random.default_rng(0))
    assert batch.inputs.shape[1] == 21 and (batch.targets[:, 1:] == PAD).all() and (batch.targets[:, 0] != PAD).all()
    keys, query = batch.inputs[:, 0:-1:2], batch.inputs[:, -1:]
    assert (keys == query).any(axis=1).all()  # the query is always one of the keys


def test_search_far_suite_matches_only_the_last_pair():
    task = get_task("search")
    batch = task.sample(200, 41, np.random.default_rng(0), "far")
    keys, query = batch.inputs[:, 0:-1:2], batch.inputs[:, -1:]
    assert (keys[:, -1:] == query).all() and (keys[:, :-1] != query).all()
    np.testing.assert_array_equal(batch.targets[:, 0], batch.inputs[:, -2])  # the last pair's value
    assert "far" in structured_suites(task)


def test_incr_carry_suite_ends_numbers_in_runs_of_nines_short_and_long():
    task = get_task("incr")
    rng = np.random.default_rng(0)
    batch = task.sample(4000, 200, rng, "carry")
    people = [task.input_text(row) for row in batch.inputs]
    runs = np.array([len(text) - len(text.rstrip("9")) for text in people])
    assert runs.min() >= 1 and runs.max() > 100  # every number carries, some through most digits
    assert 0.05 < (runs == 2).mean() < 0.2  # exactly two 9s, where the first shipped incr failed
    answers = [task.answer_text(row, batch.inputs.shape[1]) for row in batch.targets]
    assert answers == [task.oracle(text) for text in people]
    assert all(answer.endswith("0" * run) for answer, run in zip(answers, runs))  # the carry clears them
    assert "carry" in structured_suites(task) and "carry" not in get_task("copy").suites


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("badd", "10+2", "not a base-2 digit"),
        ("badd", "", "empty input"),
        ("badd", "101", "exactly one '+'"),
        ("badd", "1+1+1", "exactly one '+'"),
        ("badd", "+11", "left operand is missing"),
        ("bmul", "11+11", "exactly one '*'"),
        ("add", "12a+3", "'a'"),
        ("add", "١٢+3", "not a base-10 digit"),  # Arabic-Indic digits are not ours
        ("kvsort", "123", "even number"),
        ("copy", "0124", "not a symbol"),
        ("search", "3102", "odd number of symbols"),
        ("search", "3", "at least 3"),
        ("search", "31022", "query key 2 (the last symbol) is none of the keys 30"),
        ("search", "31x", "'x' is not a symbol"),
    ],
)
def test_bad_input_gets_a_clear_error(name, text, message):
    with pytest.raises(TaskInputError, match=re.escape(message)):
        get_task(name).parse(text)


def test_unequal_operands_are_zero_padded_and_least_significant_digit_comes_first():
    task = get_task("badd")
    np.testing.assert_array_equal(task.parse("1011+110"), [2, 2, 1, 2, 11, 1, 2, 2, 1])
    assert task.parse(" 1+1 ").tolist() == [2, 11, 2]


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="choose from badd"):
        get_task("division")


@given(name=st.sampled_from(sorted(REQUIRED)), length=st.integers(5, 60), factor=st.integers(1, 200))
def test_length_factor_undoes_scaled_length(name, length, factor):
    task = get_task(name)
    trained = task.width(length)  # a length the task trains at (odd for arithmetic)
    assert task.length_factor(task.scaled_length(trained, factor), trained) == factor
