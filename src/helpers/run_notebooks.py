"""Execute the suite's notebooks headless, in order, in one profile, resuming where a run stopped.

    python -m helpers.run_notebooks                      # every notebook, default profile
    python -m helpers.run_notebooks --profile smoke 00   # notebooks whose name starts with 00
    python -m helpers.run_notebooks --force              # rerun even the notebooks already done

Each notebook runs with papermill, which injects ``PROFILE = "<profile>"`` after the cell tagged
``parameters``. Executed copies go to ``data/executed_notebooks/<profile>/`` (never over the
tracked notebooks). The run stops at the first failing notebook and prints the failing cell's
source and error.

Resuming: after each notebook finishes, ``state.json`` beside the executed copies records its
fingerprint, its wall time and the files it wrote (relative to the data and figures folders); it
is written atomically, so an interrupt loses only the notebook in flight. A later run skips a
notebook whose fingerprint is unchanged and whose files are still there. The fingerprint covers
the notebook file, the profile, every file of the ``helpers`` package, the environment variables
in ``FINGERPRINT_ENV`` and the fingerprint of the notebook before it in the folder (a notebook
reads earlier notebooks' run folders). A notebook also runs again when an earlier one has run
since it did (its inputs may have changed), and once one notebook runs, every later selected
one runs too, for the same reason. The thread count is left out: it changes speed, not results
beyond float rounding, and it follows the machine's load (``helpers.threads``).

Progress: before each notebook the runner prints its position and the time left, estimated from
the wall times recorded by earlier runs of this profile; per-notebook wall times are printed at
the end and written to ``timings.json``. Ctrl-C (SIGINT) shuts the notebook's kernel down and exits
with status 130 and one line saying how to resume.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_write_json
from .config import ENV_CACHE_DIR, ENV_DATA_DIR, ENV_FIGURES_DIR, PROFILES, check_profile, data_dir, figures_dir, notebooks_dir
from .threads import current_plan

# Environment variables that change what a notebook produces or where it puts it.
FINGERPRINT_ENV = (ENV_DATA_DIR, ENV_FIGURES_DIR, ENV_CACHE_DIR, "CUDA_VISIBLE_DEVICES")
INTERRUPTED_EXIT = 130  # the shell's status for a process ended by SIGINT


class NotebookFailed(RuntimeError):
    """A notebook raised; the message holds the notebook, the failing cell and the error."""


class RunInterrupted(RuntimeError):
    """SIGINT arrived while a notebook ran; its kernel has been shut down."""


@dataclass
class NotebookTiming:
    notebook: str
    seconds: float
    ok: bool


def find_notebooks(names: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """Notebooks of ``folder`` in name order; ``names`` select by file name prefix or stem."""
    folder = folder or notebooks_dir()
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return found
    selected = []
    for name in names:
        matches = [p for p in found if p.stem == name or p.name == name or p.stem.startswith(name)]
        if not matches:
            raise SystemExit(f"No notebook matches {name!r}; available: {', '.join(p.stem for p in found)}")
        selected.extend(m for m in matches if m not in selected)
    return sorted(selected)


def _failing_cell_report(notebook_path: Path, executed_path: Path, error: Exception) -> str:
    import nbformat

    lines = [f"{notebook_path.name} failed: {type(error).__name__}"]
    try:
        executed = nbformat.read(executed_path, as_version=4)
    except Exception:  # the executed copy may be missing if the kernel never started
        return "\n".join(lines + [str(error)])
    for index, cell in enumerate(executed.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            lines.append(f"--- failing cell {index} (source) ---\n{cell.source}")
            lines.append(f"--- error ---\n{errors[0]['ename']}: {errors[0]['evalue']}")
            break
    else:
        lines.append(str(error))
    return "\n".join(lines)


def execute_notebook(path: Path, profile: str, output_dir: Path, cwd: Path | None = None) -> NotebookTiming:
    """Run one notebook with ``PROFILE`` injected; raise NotebookFailed with the failing cell.

    papermill runs in a worker thread with a kernel manager held here, so that Ctrl-C reaches
    this (main) thread as KeyboardInterrupt: the kernel is then shut down and RunInterrupted raised.
    (Run in the main thread, nbclient would catch SIGINT itself and report a dead kernel.)
    """
    import papermill
    from jupyter_client.manager import KernelManager

    check_profile(profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / path.name
    kernel = KernelManager(kernel_name="python3")
    outcome: dict[str, BaseException] = {}

    def execute() -> None:
        try:
            papermill.execute_notebook(str(path), str(executed), parameters={"PROFILE": profile}, km=kernel,
                                       cwd=str(cwd or path.parent), progress_bar=False, kernel_name="python3")
        except BaseException as error:  # handed to the main thread
            outcome["error"] = error

    start = time.perf_counter()
    worker = threading.Thread(target=execute, name=f"papermill {path.stem}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted during {path.stem}") from None
    finally:
        if kernel.has_kernel:  # papermill leaves a kernel it did not create running
            kernel.shutdown_kernel(now=True)
        worker.join(10)
    if "error" in outcome:
        raise NotebookFailed(_failing_cell_report(path, executed, outcome["error"])) from outcome["error"]
    return NotebookTiming(path.stem, time.perf_counter() - start, True)


# --- resuming: fingerprints, written files, the state file ---------------------------------------


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little") + part)  # length-prefixed: no ambiguous joins
    return digest.hexdigest()


def package_fingerprint() -> str:
    """Hash of every file of the ``helpers`` package (source and bundled data, not caches)."""
    root = Path(__file__).resolve().parent
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return _sha256(*(part for p in files for part in (p.relative_to(root).as_posix().encode(), p.read_bytes())))


def notebook_fingerprints(notebooks: list[Path], profile: str) -> dict[str, str]:
    """Fingerprint of each notebook, chained: each includes the one before it."""
    environment = json.dumps({name: os.environ.get(name) for name in FINGERPRINT_ENV}, sort_keys=True)
    shared = _sha256(profile.encode(), package_fingerprint().encode(), environment.encode())
    fingerprints, previous = {}, ""
    for path in notebooks:
        previous = _sha256(shared.encode(), previous.encode(), path.read_bytes())
        fingerprints[path.stem] = previous
    return fingerprints


def _snapshot(folder: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (modification time, size) of the files under ``folder``, ``skip`` left out."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file() and skip not in p.parents}


def _written(before: dict, after: dict) -> list[str]:
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or torn by a crash before atomic writes existed
        return {}


def _outputs_present(entry: dict) -> bool:
    roots = {"data": data_dir(), "figures": figures_dir()}
    return all((roots[kind] / rel).exists() for kind, paths in entry.get("outputs", {}).items() for rel in paths)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _time_left(stems: list[str], previous_seconds: dict[str, float]) -> str:
    known = [previous_seconds[s] for s in stems if s in previous_seconds]
    untimed = len(stems) - len(known)
    if not known:
        return "no earlier timings of this profile to estimate the time left"
    more = f" + {untimed} notebook{'s' if untimed > 1 else ''} never timed" if untimed else ""
    return f"about {_minutes(sum(known))} left{more}"


def run(names: list[str] | None, profile: str, output_dir: Path | None = None, force: bool = False,
        folder: Path | None = None) -> list[NotebookTiming]:
    """Execute the selected notebooks in order, skipping those done with the same fingerprint.

    Stops at the first failure (NotebookFailed) or at Ctrl-C (RunInterrupted); either way the
    notebooks finished so far stay recorded in ``state.json`` and are skipped next time.
    """
    check_profile(profile)
    output_dir = output_dir or data_dir() / "executed_notebooks" / profile
    every = find_notebooks(None, folder)
    selected = find_notebooks(names, folder)
    if not selected:
        raise SystemExit(f"No notebooks found in {folder or notebooks_dir()}.")
    fingerprints = notebook_fingerprints(every, profile)
    state_path = output_dir / "state.json"
    state = _read_json(state_path).get("notebooks", {})
    previous_seconds = {t["notebook"]: t["seconds"] for t in _read_json(output_dir / "timings.json").get("notebooks", [])
                        if t.get("ok")}
    previous_seconds.update({stem: entry["seconds"] for stem, entry in state.items()})

    def earlier_runs(path: Path) -> dict[str, str | None]:  # when each earlier notebook last finished
        return {p.stem: state.get(p.stem, {}).get("finished") for p in every[:every.index(path)]}

    to_run, rerun_rest = [], force
    for path in selected:  # once one notebook runs, the ones after it read its new outputs
        entry = state.get(path.stem, {})
        if (rerun_rest or entry.get("fingerprint") != fingerprints[path.stem] or not _outputs_present(entry)
                or entry.get("after") != earlier_runs(path)):
            to_run.append(path)
            rerun_rest = True

    print(f"[{profile}] {len(selected) - len(to_run)} of {len(selected)} notebooks done with this code and "
          f"configuration, {len(to_run)} to run; {current_plan().describe()}", flush=True)
    timings: list[NotebookTiming] = []

    def save_state() -> None:
        atomic_write_json(state_path, {"profile": profile, "notebooks": state})

    try:
        for index, path in enumerate(selected, 1):
            position = f"[{profile}] {path.stem} ({index}/{len(selected)})"
            if path not in to_run:
                print(f"{position} done on {state[path.stem]['finished'][:19]}, skipped", flush=True)
                continue
            remaining = [p.stem for p in to_run[to_run.index(path):]]
            print(f"{position} ... {_time_left(remaining, previous_seconds)}", flush=True)
            if state.pop(path.stem, None) is not None:  # a rerun cut short must not count as done
                save_state()
            before = {"data": _snapshot(data_dir(), output_dir), "figures": _snapshot(figures_dir(), output_dir)}
            start = time.perf_counter()
            try:
                timing = execute_notebook(path, profile, output_dir)
            except (NotebookFailed, RunInterrupted):
                timings.append(NotebookTiming(path.stem, time.perf_counter() - start, False))
                raise
            timings.append(timing)
            outputs = {kind: _written(before[kind], _snapshot(root, output_dir))
                       for kind, root in (("data", data_dir()), ("figures", figures_dir()))}
            state[path.stem] = {"fingerprint": fingerprints[path.stem], "seconds": round(timing.seconds, 1),
                                "finished": _dt.datetime.now().isoformat(timespec="microseconds"),
                                "after": earlier_runs(path), "outputs": outputs}
            save_state()
            print(f"{position} done in {_minutes(timing.seconds)}", flush=True)
    finally:
        if timings:
            atomic_write_json(output_dir / "timings.json", {"profile": profile, "notebooks": timings,
                                                              "total_seconds": sum(t.seconds for t in timings)})
            print(f"\n{'notebook':40s} {'seconds':>8s}  status")
            for t in timings:
                print(f"{t.notebook:40s} {t.seconds:8.0f}  {'ok' if t.ok else 'FAILED'}")
            print(f"{'total':40s} {sum(t.seconds for t in timings):8.0f}")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.run_notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook stems or prefixes (default: all)")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--force", action="store_true", help="rerun notebooks already done with this code")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where executed copies, timings.json and state.json go "
                             "(default: data/executed_notebooks/<profile>)")
    parser.add_argument("--notebooks-dir", type=Path, default=None, help="folder of the notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    try:
        run(args.names, args.profile, args.output_dir, force=args.force, folder=args.notebooks_dir)
    except NotebookFailed as failure:
        print(f"\n{failure}", file=sys.stderr)
        return 1
    except (RunInterrupted, KeyboardInterrupt) as interrupted:
        print(f"\nStopped: {interrupted or 'interrupted'}; the notebooks finished before it are recorded. Run the same command "
              f"again to resume (make run FORCE=1 or --force reruns everything).", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
