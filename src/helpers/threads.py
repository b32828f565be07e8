"""How many CPU threads PyTorch uses and how its OpenMP threads wait, chosen in one place.

Importing ``helpers`` calls ``configure_threads()``, so every notebook, command and test that
imports the package gets the same choice, and the processes they start (papermill kernels,
``accelerate`` workers) inherit it through the environment::

    SLM_NOTEBOOKS_THREADS=1 make run      # force one thread
    OMP_NUM_THREADS=2 make run            # a user's own OMP_NUM_THREADS is kept as it is
    current_plan()                        # ThreadPlan(threads=2, wait_policy='PASSIVE', reason=...)

The thread count, first rule that applies:
1. ``SLM_NOTEBOOKS_THREADS`` (this suite's setting; it also overrides ``OMP_NUM_THREADS``);
2. ``OMP_NUM_THREADS`` if the user set it, else ``MKL_NUM_THREADS``;
3. the CPUs this process may run on (``os.sched_getaffinity``: taskset, cgroups cpusets), less
   the cores other processes keep busy right now, at least one. "Right now" is the number of
   runnable tasks in ``/proc/loadavg`` other than this one (the median of a few samples 10 ms
   apart), not the 1-minute load average: that average lags by a minute and counts this suite's
   own previous notebook, which made every kernel of a ``make run`` pick one thread on an
   otherwise quiet machine. Where ``/proc/loadavg`` is missing the 1-minute average is used.
The count is written to both ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``: when torch starts it
sizes its OpenMP pool from MKL's count, so a stray ``MKL_NUM_THREADS=1`` would otherwise win.

Why fewer threads than cores when cores are taken: PyTorch parallelises each operation with
OpenMP, whose threads meet at a barrier after every operation; if one thread shares its core with
another busy process, all the others wait for it at every barrier. Measured here
(``bench/bench_threads.py``, decode-sized matmuls, 2 CPUs, ``bench/results/threads.json``):
alone, 2 threads ran 2331 iterations/s and 1 thread 1497; beside one busy process, 2 threads fell
to 49/s (libgomp's default spinning) or 497/s (passive waiting) while 1 thread kept 1268/s. A
wrongly reduced count costs at most the parallel speed-up; a wrongly kept one costs far more,
so a core counts as taken as soon as another runnable task is seen on it. Set
``SLM_NOTEBOOKS_THREADS`` when you know better.

The wait policy: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (or ``GOMP_SPINCOUNT``).
PyTorch's CPU wheels use GNU OpenMP (libgomp, see ``torch.__config__.parallel_info()``), whose
idle threads otherwise spin for up to 300,000 rounds before sleeping, burning a core that another
process needs; passive threads sleep at once. Alone, passive waiting cost 40 % of the 2-thread
speed on these tiny operations (1393/s against 2331/s) and nothing with one thread (no idle
threads to wait); beside a busy process it was 10 times faster than spinning.
libgomp reads these variables once, when torch loads it, so they are set in ``os.environ`` at
import of ``helpers``, which every notebook does before it imports torch; a process that
imported torch first keeps libgomp's default policy and its plan says so.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Mapping

ENV_THREADS = "SLM_NOTEBOOKS_THREADS"
# What a parent process chose automatically, so that its children (which see OMP_NUM_THREADS set,
# and a load average raised by the parent's own work) keep the same count and say why.
ENV_CHOSEN = "SLM_NOTEBOOKS_THREADS_CHOSEN"
PASSIVE = "PASSIVE"


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count, the OpenMP wait policy in force, and why (recorded in every manifest)."""

    threads: int
    wait_policy: str
    reason: str

    def describe(self) -> str:
        return f"{self.threads} thread{'s' if self.threads > 1 else ''} ({self.reason}), OpenMP wait policy {self.wait_policy}"

    def manifest(self) -> dict:
        return asdict(self)


def busy_elsewhere(samples: int = 5, interval_s: float = 0.01) -> float:
    """Tasks runnable now other than this process (median of ``samples`` reads of the 4th field
    of ``/proc/loadavg``, "running/total", which counts the reader itself); off Linux, the
    1-minute load average."""
    counts = []
    for index in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return os.getloadavg()[0]
        if index + 1 < samples:
            time.sleep(interval_s)
    return float(sorted(counts)[len(counts) // 2])


def available_cpus() -> int:
    """CPUs this process may run on (affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _whole_number(name: str, value: str) -> int:
    # OMP_NUM_THREADS may list nested levels ("4,2"); the first is the one PyTorch uses.
    first = value.split(",")[0].strip()
    if not first.isdigit() or int(first) < 1:
        raise ValueError(f"{name}={value!r} is not a whole number >= 1: set it to the threads PyTorch may use, "
                         f"or unset it to choose from the CPUs available.")
    return int(first)


def plan_threads(environ: Mapping[str, str], cpus: int, load: float) -> ThreadPlan:
    """The plan for an environment, ``cpus`` usable CPUs and a 1-minute ``load`` average (pure)."""
    policy = environ.get("OMP_WAIT_POLICY") or (
        f"libgomp default, GOMP_SPINCOUNT={environ['GOMP_SPINCOUNT']}" if environ.get("GOMP_SPINCOUNT") else PASSIVE)
    if environ.get(ENV_THREADS):
        return ThreadPlan(_whole_number(ENV_THREADS, environ[ENV_THREADS]), policy, f"{ENV_THREADS} set")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if environ.get(name):
            threads = _whole_number(name, environ[name])
            inherited_count, _, inherited_reason = environ.get(ENV_CHOSEN, "").partition(":")
            if inherited_count == str(threads) and inherited_reason:
                return ThreadPlan(threads, policy, inherited_reason)
            return ThreadPlan(threads, policy, f"{name} set")
    busy = min(cpus - 1, int(load + 0.5))  # cores other processes keep busy, leaving at least one
    if busy > 0:
        return ThreadPlan(cpus - busy, policy, f"{cpus} CPUs available, {load:.0f} busy elsewhere: "
                                               f"{busy} left to other processes")
    return ThreadPlan(cpus, policy, f"{cpus} CPU{'s' if cpus > 1 else ''} available, none busy elsewhere")


_plan: ThreadPlan | None = None


def configure_threads() -> ThreadPlan:
    """Choose the plan for this process and put it in ``os.environ`` for libgomp and child processes.

    Runs at import of ``helpers``. If torch is already loaded its thread count is set too, but the
    wait policy cannot change any more, which the plan then states. A bad setting raises
    SystemExit with one line saying how to fix it, since nothing in the suite can run without it.
    """
    global _plan
    try:
        plan = plan_threads(os.environ, available_cpus(), busy_elsewhere())
    except ValueError as error:
        raise SystemExit(str(error)) from None
    policy_was_in_environment = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(plan.threads)
    os.environ[ENV_CHOSEN] = f"{plan.threads}:{plan.reason}"
    if plan.wait_policy == PASSIVE:
        os.environ["OMP_WAIT_POLICY"] = PASSIVE
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(plan.threads)
        if not policy_was_in_environment:  # libgomp read its variables when torch loaded, before this
            plan = ThreadPlan(plan.threads, "libgomp default (torch was imported before helpers)", plan.reason)
    _plan = plan
    return plan


def current_plan() -> ThreadPlan:
    """The plan this process runs with (chosen at import of ``helpers``)."""
    return _plan or configure_threads()


def apply_threads() -> ThreadPlan:
    """Make torch's thread pool match the plan, for entry points that may have imported torch early."""
    import torch

    plan = current_plan()
    if torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    return plan
