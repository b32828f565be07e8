"""The task registry: every task name the notebooks and the CLI accept, and how to build its items.

    from helpers.tasks.registry import TASKS, build_items
    items = build_items(["basic_arithmetic", "syllogism_mc", "humaneval"], n_per_task=10, seed=0)

Names are the reasoning-gym tasks of ``reasoning_gym_tasks.RG_TASKS`` plus ``humaneval``. Items are
interleaved across tasks (first item of each task, then the second, ...), so that a run cut short
still covers the whole mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .items import TaskItem
from .loaders import humaneval_items
from .reasoning_gym_tasks import RG_TASKS, rg_items


@dataclass(frozen=True)
class TaskSource:
    name: str
    domain: str
    answer_format: str
    build: Callable[[int, int], list[TaskItem]]  # (n, seed) -> items


def _rg_source(name: str) -> TaskSource:
    task = RG_TASKS[name]
    return TaskSource(name, task.domain, task.answer_format, lambda n, seed: rg_items(name, n, seed))


TASKS: dict[str, TaskSource] = {name: _rg_source(name) for name in RG_TASKS}
TASKS["humaneval"] = TaskSource("humaneval", "code", "code", lambda n, seed: humaneval_items(n, seed))


def parse_task_names(names: str | list[str]) -> list[str]:
    """A comma-separated string or a list of names, each checked against the registry."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}. Registered tasks: {', '.join(TASKS)} "
                         "(`python -m helpers tasks list` shows their domains and formats).")
    if not names:
        raise ValueError("No task named: pass at least one, e.g. --tasks basic_arithmetic,syllogism_mc.")
    return list(names)


def build_items(names: str | list[str], n_per_task: int, seed: int,
                exclude: frozenset[str] | set[str] = frozenset()) -> list[TaskItem]:
    """``n_per_task`` items of each named task, interleaved across tasks. Items whose question is
    in ``exclude`` are skipped and the task's next items taken instead (a task's items for a seed
    are one fixed sequence; at most ``3 * n_per_task`` are drawn, so a task whose small question
    space is mostly excluded gives fewer)."""
    draw = 3 * n_per_task if exclude else n_per_task
    per_task = [[item for item in TASKS[name].build(draw, seed) if item.question not in exclude][:n_per_task]
                for name in parse_task_names(names)]
    return [items[i] for i in range(max(map(len, per_task))) for items in per_task if i < len(items)]
