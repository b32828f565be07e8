"""Benchmark: how PyTorch's thread count and OpenMP wait policy behave when a core is taken.

    python bench/bench_threads.py [--seconds 3]

Runs a decode-sized matmul loop (8 x 576 activations through a 576 -> 1536 -> 576 MLP, the shape
of the embedded LM's layers) in a fresh process per setting, so that the OpenMP variables apply
before torch starts: 1 or 2 threads, libgomp's default wait policy or ``OMP_WAIT_POLICY=PASSIVE``,
alone and beside one ``while True: pass`` competitor per setting. Writes
``bench/results/threads.json``: per setting, iterations per second and CPU seconds spent per
iteration (CPU time above one thread's share is time the OpenMP threads spent spinning or
working in parallel). ``helpers.threads`` chooses from these numbers; see its docstring.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# Runs in a fresh interpreter: the OpenMP variables are read when torch's libgomp loads.
WORKLOAD = """
import json, resource, sys, time
import torch
x, w1, w2 = torch.randn(8, 576), torch.randn(576, 1536), torch.randn(1536, 576)
for _ in range(50):
    (x @ w1).relu() @ w2
seconds = float(sys.argv[1])
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
start, n = time.perf_counter(), 0
while time.perf_counter() - start < seconds:
    (x @ w1).relu() @ w2
    n += 1
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"iterations_per_s": n / wall, "cpu_ms_per_iteration": 1000 * (usage.ru_utime + usage.ru_stime - cpu0) / n,
                  "torch_threads": torch.get_num_threads()}))
"""


def measure(threads: int, policy: str | None, competitor: bool, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
    try:
        out = subprocess.run([sys.executable, "-c", WORKLOAD, str(seconds)], env=env, check=True,
                             capture_output=True, text=True).stdout
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    return {"threads": threads, "wait_policy": policy or "libgomp default", "competitor": competitor,
            **json.loads(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per setting")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for competitor in (False, True):
        for threads in (1, 2):
            for policy in (None, "PASSIVE"):
                row = measure(threads, policy, competitor, args.seconds)
                rows.append(row)
                print(f"threads={threads} policy={row['wait_policy']:16s} competitor={competitor!s:5s} "
                      f"{row['iterations_per_s']:8.0f} it/s  {row['cpu_ms_per_iteration']:.3f} CPU ms/it", flush=True)
    RESULTS.mkdir(exist_ok=True)
    result = {"workload": "8x576 @ 576x1536, relu, @ 1536x576 (float32)", "seconds_per_setting": args.seconds,
              "cpus_available": len(os.sched_getaffinity(0)), "load_average_before": load_before,
              "load_average_after": os.getloadavg(),
              "cpu": platform.processor() or platform.machine(), "rows": rows,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (RESULTS / "threads.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
