"""The task registry: every task by name, with a worked example in a person's notation.

>>> task = get_task("badd")
>>> task.oracle("1011+110")
'10001'

Inside the model ``1011+110`` becomes the symbols ``1101+0110`` (each operand zero-padded to
equal width and written least-significant digit first) and the answer ``10001`` becomes the target
``10001`` read the same way, padded with zeros to the full result width of k + 1 = 5 digits.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuralgpu.tasks.arithmetic import COMMON_SUITES, PRODUCT_SUITES, STRUCTURED_SUITES, ArithmeticTask
from neuralgpu.tasks.base import PAD, SYMBOLS, VOCAB_SIZE, Batch, Task, TaskInputError, stable_seed
from neuralgpu.tasks.search import SearchTask
from neuralgpu.tasks.sequence import GENERIC_SUITES, NUMBER_SUITES, SEQUENCE_TRANSFORMS, SequenceTask


@dataclass(frozen=True)
class TaskInfo:
    """A registry entry: the task, one line on what it computes, and one worked example."""

    task: Task
    summary: str
    example: str
    answer: str


def _arithmetic(name: str, base: int, operator: str, summary: str, example: str, answer: str) -> TaskInfo:
    suites = (*COMMON_SUITES, *PRODUCT_SUITES) if operator == "*" else COMMON_SUITES
    return TaskInfo(ArithmeticTask(name, base, operator, suites=suites), summary, example, answer)


def _sequence(name: str, base: int, summary: str, example: str, answer: str, **options: object) -> TaskInfo:
    transform, reference = SEQUENCE_TRANSFORMS[name]
    return TaskInfo(SequenceTask(name, base, transform, reference, **options), summary, example, answer)  # type: ignore[arg-type]


REGISTRY: dict[str, TaskInfo] = {
    info.task.name: info
    for info in (
        _arithmetic("badd", 2, "+", "binary addition", "1011+110", "10001"),
        _arithmetic("bmul", 2, "*", "binary multiplication", "101*11", "1111"),
        _arithmetic("qadd", 4, "+", "base-4 addition", "3012+333", "10011"),
        _arithmetic("qmul", 4, "*", "base-4 multiplication", "32*13", "1202"),
        _arithmetic("add", 10, "+", "decimal addition", "958+67", "1025"),
        _arithmetic("mul", 10, "*", "decimal multiplication", "123*45", "5535"),
        _sequence("copy", 4, "copy the input", "3102", "3102"),
        _sequence("reverse", 4, "reverse the input", "3102", "2013"),
        _sequence("duplicate", 4, "write the input twice", "310", "310310", output_factor=2),
        _sequence("sort", 2, "sort bits (counting)", "10110", "00111"),
        _sequence("kvsort", 4, "sort key-value pairs by key, stably", "31022011", "02112031", paired=True),
        _sequence("rev2", 4, "reverse the order of pairs", "310220", "200231", paired=True),
        _sequence(
            "incr", 10, "add one to a decimal number", "1299", "1300", numeric=True, suites=(*GENERIC_SUITES, *NUMBER_SUITES)
        ),
        _sequence("left-shift", 4, "rotate by one: the last symbol comes first", "3102", "2310"),
        _sequence("right-shift", 4, "rotate by one: the first symbol goes last", "3102", "1023"),
        TaskInfo(SearchTask(), "value of the first pair keyed by the last symbol", "3102233", "1"),
    )
}


def task_names() -> list[str]:
    return list(REGISTRY)


def get_task(name: str) -> Task:
    """The registered task called ``name``; a clear error lists the choices."""
    try:
        return REGISTRY[name].task
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(REGISTRY)}") from None


def structured_suites(task: Task) -> tuple[str, ...]:
    """Every suite of a task except the random one."""
    return tuple(suite for suite in task.suites if suite != "random")


__all__ = [
    "PAD",
    "REGISTRY",
    "STRUCTURED_SUITES",
    "SYMBOLS",
    "VOCAB_SIZE",
    "ArithmeticTask",
    "Batch",
    "SearchTask",
    "SequenceTask",
    "Task",
    "TaskInfo",
    "TaskInputError",
    "get_task",
    "stable_seed",
    "structured_suites",
    "task_names",
]
