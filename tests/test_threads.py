"""The thread plan: overrides, CPU affinity, the tasks running elsewhere, and OpenMP settings before torch starts.

``plan_threads`` is pure and tested on given environments; what happens at import is tested in
fresh subprocesses, since libgomp reads its variables only once, when torch loads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.threads import ENV_CHOSEN, ENV_THREADS, PASSIVE, plan_threads


def _fresh_python(code: str, env_changes: dict[str, str | None]) -> dict:
    """Run ``code`` (which prints one JSON line) in a new interpreter with the environment changed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", ENV_THREADS,
                        ENV_CHOSEN)}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
import json, os
import helpers
policy_before_torch = os.environ.get("OMP_WAIT_POLICY")
import torch
from helpers.threads import current_plan
print(json.dumps({"torch_threads": torch.get_num_threads(), "policy_before_torch": policy_before_torch,
                  "parallel_info": torch.__config__.parallel_info(), **current_plan().manifest()}))
"""


def test_suite_setting_wins_over_everything():
    plan = plan_threads({ENV_THREADS: "3", "OMP_NUM_THREADS": "1"}, cpus=2, load=5.0)
    assert plan.threads == 3 and ENV_THREADS in plan.reason


def test_users_omp_num_threads_wins_over_the_automatic_choice():
    plan = plan_threads({"OMP_NUM_THREADS": "4"}, cpus=2, load=0.0)
    assert (plan.threads, plan.reason) == (4, "OMP_NUM_THREADS set")
    assert plan_threads({"OMP_NUM_THREADS": "2,1"}, cpus=8, load=0.0).threads == 2, "nested list: first level"
    assert plan_threads({"MKL_NUM_THREADS": "1"}, cpus=2, load=0.0).threads == 1, "torch sizes its pool from MKL's"


def test_all_usable_cpus_on_a_quiet_machine():
    assert plan_threads({}, cpus=2, load=0.3).threads == 2
    assert plan_threads({}, cpus=1, load=3.0).threads == 1, "never fewer than one thread"


def test_cores_the_load_average_shows_taken_are_left_free():
    assert plan_threads({}, cpus=2, load=0.6).threads == 1, "one busy core of two: one thread"
    assert plan_threads({}, cpus=2, load=7.0).threads == 1
    assert plan_threads({}, cpus=8, load=2.4).threads == 6


def test_passive_waiting_unless_the_user_chose_a_policy():
    assert plan_threads({}, cpus=2, load=0).wait_policy == PASSIVE
    assert plan_threads({"OMP_WAIT_POLICY": "ACTIVE"}, cpus=2, load=0).wait_policy == "ACTIVE"
    assert "GOMP_SPINCOUNT=1000" in plan_threads({"GOMP_SPINCOUNT": "1000"}, cpus=2, load=0).wait_policy


def test_a_child_keeps_the_parents_automatic_choice_and_reason():
    parent = plan_threads({}, cpus=2, load=0.0)
    child_env = {"OMP_NUM_THREADS": str(parent.threads), ENV_CHOSEN: f"{parent.threads}:{parent.reason}"}
    assert plan_threads(child_env, cpus=2, load=1.9) == parent, "the child's load includes the parent's own work"
    assert plan_threads({**child_env, "OMP_NUM_THREADS": "1"}, cpus=2, load=0).reason == "OMP_NUM_THREADS set"


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5"])
def test_bad_setting_is_refused_with_the_fix(bad):
    with pytest.raises(ValueError, match=f"{ENV_THREADS}='{bad}' is not a whole number >= 1: set it"):
        plan_threads({ENV_THREADS: bad}, cpus=2, load=0)


def test_environment_override_reaches_torch_and_the_policy_is_set_before_torch_loads():
    seen = _fresh_python(PROBE, {ENV_THREADS: "2"})
    assert seen["threads"] == 2 and seen["torch_threads"] == 2, "SLM_NOTEBOOKS_THREADS must size torch's pool"
    assert seen["policy_before_torch"] == PASSIVE and seen["wait_policy"] == PASSIVE, (
        "OMP_WAIT_POLICY must be in os.environ when `import helpers` returns, before torch starts libgomp")
    assert "OpenMP" in seen["parallel_info"], "torch here is expected to use OpenMP (libgomp)"


def test_users_own_omp_num_threads_reaches_torch():
    seen = _fresh_python(PROBE, {"OMP_NUM_THREADS": "1"})
    assert (seen["torch_threads"], seen["reason"]) == (1, "OMP_NUM_THREADS set")


def test_suite_setting_beats_a_stray_mkl_num_threads():
    seen = _fresh_python(PROBE, {ENV_THREADS: "2", "MKL_NUM_THREADS": "1"})
    assert seen["torch_threads"] == 2, "MKL_NUM_THREADS must be rewritten too: torch sizes its pool from it"


def test_affinity_of_one_cpu_gives_one_thread():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    pinned = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n" + PROBE
    seen = _fresh_python(pinned, {})
    assert seen["torch_threads"] == 1 and seen["reason"].startswith("1 CPU available"), seen


def test_torch_imported_before_helpers_is_reported_not_hidden():
    seen = _fresh_python("import torch\n" + PROBE, {ENV_THREADS: "1"})
    assert seen["torch_threads"] == 1, "configure_threads must set torch's pool when torch is already loaded"
    assert seen["wait_policy"].startswith("libgomp default"), "the passive policy cannot apply any more"


def test_bad_setting_stops_the_import_with_one_line():
    env = {k: v for k, v in os.environ.items()}
    env.update({ENV_THREADS: "many", "PYTHONPATH": os.pathsep.join(sys.path)})
    done = subprocess.run([sys.executable, "-c", "import helpers"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "SLM_NOTEBOOKS_THREADS='many'" in done.stderr


def test_manifest_records_the_threads(tmp_path):
    from helpers.artifacts import write_manifest
    from helpers.threads import current_plan

    manifest = json.loads(write_manifest(tmp_path, {"n": 1}).read_text())
    assert manifest["threads"] == current_plan().manifest() and manifest["threads"]["threads"] >= 1


def test_a_running_competitor_counts_as_busy_elsewhere_at_once():
    import subprocess
    import sys
    import time

    from helpers.threads import busy_elsewhere

    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # past interpreter start-up: now it only spins
        assert busy_elsewhere() >= 1, "a spinning process must be seen at once, not a minute later"
    finally:
        competitor.kill()
        competitor.wait()
