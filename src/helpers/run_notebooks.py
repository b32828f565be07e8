"""Execute the suite's notebooks headless, in order, in one profile.

    python -m helpers.run_notebooks                      # every notebook, default profile
    python -m helpers.run_notebooks --profile smoke 00   # notebooks whose name starts with 00

Each notebook runs with papermill, which injects ``PROFILE = "<profile>"`` after the cell tagged
``parameters``. Executed copies go to ``data/executed_notebooks/<profile>/`` (never over the
tracked notebooks). The run stops at the first failing notebook and prints the failing cell's
source and error. Per-notebook wall times are printed and written to ``timings.json`` beside the
executed copies, so that the time budget of each profile stays visible.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_write_json
from .config import PROFILES, check_profile, data_dir, notebooks_dir


class NotebookFailed(RuntimeError):
    """A notebook raised; the message holds the notebook, the failing cell and the error."""


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
    """Run one notebook with ``PROFILE`` injected; raise NotebookFailed with the failing cell."""
    import papermill

    check_profile(profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / path.name
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(path), str(executed), parameters={"PROFILE": profile},
                                   cwd=str(cwd or path.parent), progress_bar=False, kernel_name="python3")
    except Exception as error:
        raise NotebookFailed(_failing_cell_report(path, executed, error)) from error
    return NotebookTiming(path.stem, time.perf_counter() - start, True)


def run(names: list[str] | None, profile: str, output_dir: Path | None = None) -> list[NotebookTiming]:
    """Execute the selected notebooks in order; stop at the first failure."""
    output_dir = output_dir or data_dir() / "executed_notebooks" / profile
    timings: list[NotebookTiming] = []
    notebooks = find_notebooks(names)
    if not notebooks:
        raise SystemExit(f"No notebooks found in {notebooks_dir()}.")
    try:
        for path in notebooks:
            print(f"[{profile}] {path.name} ...", flush=True)
            start = time.perf_counter()
            try:
                timing = execute_notebook(path, profile, output_dir)
            except NotebookFailed:
                timings.append(NotebookTiming(path.stem, time.perf_counter() - start, False))
                raise
            timings.append(timing)
            print(f"[{profile}] {path.name} done in {timing.seconds:.0f} s", flush=True)
    finally:
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
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where executed copies go (default: data/executed_notebooks/<profile>)")
    args = parser.parse_args(argv)
    try:
        run(args.names, args.profile, args.output_dir)
    except NotebookFailed as failure:
        print(f"\n{failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
