"""Run untrusted, model-generated Python code in a separate, limited process.

    from helpers.tasks.sandbox import run_code
    result = run_code(solution + "\\n\\n" + tests, timeout_s=5.0)
    result.passed, result.reason        # True, "ok" / False, "AssertionError: ..."

The code runs in a fresh ``python -I -B`` process, in a new temporary folder (its working
directory, HOME and TMPDIR), with a minimal environment, in its own session, and under resource
limits: address space (``memory_mb``), CPU time, file size (10 MB), no core dumps and, where the
kernel enforces it (not for root), the number of processes. stdout and stderr go to files, so a
program that prints forever cannot fill the caller's memory. On timeout the whole process group is
killed; it is killed after every run anyway, so no stray child survives.

Inside the child, a small driver installs guards before running the code: forking, exec, spawning,
subprocesses (hence multiprocessing), signals to other processes and sockets raise
``PermissionError``, and so does changing any path outside the temporary folder (opening for
writing, removing, renaming, linking, chmod, ...; this covers ``shutil`` and ``pathlib``). These
guards are defence in depth for accidents, not a wall: code using ``ctypes`` can get past them.

A run passes only if the process exits with status 0 *after* the driver printed a random token
generated for this run, so ``sys.exit(0)`` or ``os._exit(0)`` before the tests cannot pass.

This is a process-level sandbox for grading honest-but-buggy model output. It is not a security
boundary against a determined attacker; for that, run the whole evaluation inside a container or VM.
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

OUTPUT_LIMIT_CHARS = 2000
FILE_SIZE_LIMIT_BYTES = 10 * 1024 * 1024
PROCESS_HEADROOM = 32  # processes or threads the code may add to what the machine runs now
PROGRAM_NAME = "program.py"

# Runs in the child: reads the run's token from stdin, installs the guards, runs program.py as
# __main__, then prints the token on the real stdout. Only reached if the program did not exit.
_DRIVER = r'''
import builtins, io, os, runpy, socket, sys
import _posixsubprocess

_write = os.write
_token = sys.stdin.readline().strip()
_root = os.path.realpath(os.getcwd())
_realpath, _readlink, _join, _getpid = os.path.realpath, os.readlink, os.path.join, os.getpid
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _inside(path, dir_fd=None):
    if isinstance(path, int):  # an open descriptor was checked when it was opened
        return True
    path = os.fsdecode(os.fspath(path))
    if dir_fd is not None and not os.path.isabs(path):
        path = _join(_readlink(f"/proc/self/fd/{dir_fd}"), path)
    full = _realpath(path)
    return full == _root or full.startswith(_root + os.sep) or full == os.devnull


def _check(path, dir_fd=None):
    if not _inside(path, dir_fd):
        raise PermissionError(f"sandbox: changing {path!r} outside the sandbox folder is not allowed")


def _blocked(name):
    def blocked(*args, **kwargs):
        raise PermissionError(f"sandbox: {name} is not allowed")
    return blocked


def _one_path(fn):
    def guarded(path, *args, **kwargs):
        _check(path, kwargs.get("dir_fd"))
        return fn(path, *args, **kwargs)
    return guarded


def _two_paths(fn, check_source=True):
    def guarded(src, dst, *args, **kwargs):
        if check_source:
            _check(src, kwargs.get("src_dir_fd"))
        _check(dst, kwargs.get("dst_dir_fd", kwargs.get("dir_fd")))
        return fn(src, dst, *args, **kwargs)
    return guarded


def _guard_open(fn):
    def guarded(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            _check(file)
        return fn(file, mode, *args, **kwargs)
    return guarded


def _guard_os_open(fn):
    def guarded(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            _check(path, kwargs.get("dir_fd"))
        return fn(path, flags, *args, **kwargs)
    return guarded


def _guard_kill(fn):
    def guarded(pid, sig):
        if pid != _getpid():
            raise PermissionError("sandbox: signalling other processes is not allowed")
        return fn(pid, sig)
    return guarded


def _install_guards():
    for name in dir(os):
        if name.startswith(("exec", "spawn", "posix_spawn")) or name in (
                "fork", "forkpty", "system", "popen", "killpg"):
            setattr(os, name, _blocked(f"os.{name}"))
    _posixsubprocess.fork_exec = _blocked("starting a subprocess")
    os.kill = _guard_kill(os.kill)
    for name in ("remove", "unlink", "rmdir", "mkdir", "truncate", "chmod", "chown", "utime"):
        setattr(os, name, _one_path(getattr(os, name)))
    for name in ("rename", "replace", "link"):
        setattr(os, name, _two_paths(getattr(os, name)))
    os.symlink = _two_paths(os.symlink, check_source=False)
    os.open = _guard_os_open(os.open)
    builtins.open = io.open = _guard_open(io.open)

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise PermissionError("sandbox: network access is not allowed")

    socket.socket = NoSocket


_install_guards()
runpy.run_path(PROGRAM_NAME, run_name="__main__")
for _stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
    try:
        _stream.flush()
    except Exception:
        pass
_write(1, f"\n{_token}\n".encode())
'''.replace("PROGRAM_NAME", repr(PROGRAM_NAME))


@dataclass
class SandboxResult:
    """Outcome of ``run_code``. ``reason`` is "ok" when passed, else a one-line cause such as
    "timeout", "AssertionError: ...", "crashed (SIGSEGV)" or "out of memory (limit 512 MB)"."""

    passed: bool
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    reason: str


def run_code(code: str, timeout_s: float = 5.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``code`` as a Python program in a limited child process (see the module docstring);
    it passes when it exits with status 0 after running to its end within ``timeout_s`` seconds."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s} and {memory_mb}.")
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="sandbox-", ignore_cleanup_errors=True) as root:
        root = Path(root)
        work = root / "work"
        work.mkdir()
        (work / PROGRAM_NAME).write_text(code, encoding="utf-8")
        (root / "driver.py").write_text(_DRIVER, encoding="utf-8")
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", str(root / "driver.py")],
                cwd=work, env=_child_environment(work), stdin=subprocess.PIPE, stdout=out, stderr=err,
                start_new_session=True,
                preexec_fn=partial(_limit_resources, timeout_s, memory_mb, _process_limit()))
            _send_token(process, token)
            timed_out = _wait_and_kill_group(process, timeout_s)
        stdout = (root / "stdout").read_text(encoding="utf-8", errors="replace")
        stderr = (root / "stderr").read_text(encoding="utf-8", errors="replace")
    finished = token in stdout
    stdout = stdout.replace(f"\n{token}\n", "")
    returncode = process.returncode
    return SandboxResult(
        passed=returncode == 0 and finished and not timed_out,
        returncode=returncode,
        timed_out=timed_out,
        stdout=_clip(stdout),
        stderr=_clip(stderr),
        reason=_reason(returncode, timed_out, finished, stderr, memory_mb),
    )


def _child_environment(work: Path) -> dict[str, str]:
    """Nothing from the caller's environment (no proxies, tokens or PYTHON* settings)."""
    return {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}


def _process_limit() -> int | None:
    """RLIMIT_NPROC counts every task of the user, so the limit is the machine's current task
    count (an upper bound of the user's, from /proc/loadavg) plus some headroom; None off Linux."""
    try:
        total = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return None
    return total + PROCESS_HEADROOM


def _limit_resources(timeout_s: float, memory_mb: int, process_limit: int | None) -> None:
    """preexec_fn: runs in the child between fork and exec."""
    cpu_s = math.ceil(timeout_s) + 1
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _set_limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT_BYTES)
    if process_limit is not None:
        _set_limit(resource.RLIMIT_NPROC, process_limit)
    _set_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)  # last: the steps above allocate


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Set soft and hard limits, never above an existing hard limit (which would fail)."""
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def _send_token(process: subprocess.Popen, token: str) -> None:
    try:
        process.stdin.write(f"{token}\n".encode())
        process.stdin.close()
    except BrokenPipeError:
        pass  # the child died at start-up; its return code tells why


def _wait_and_kill_group(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to ``timeout_s``; then kill the child's whole process group. True if timed out."""
    try:
        process.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone
    process.wait()
    return timed_out


def _reason(returncode: int, timed_out: bool, finished: bool, stderr: str, memory_mb: int) -> str:
    if timed_out:
        return "timeout"
    if returncode < 0:
        return _signal_reason(-returncode)
    if returncode == 0:
        return "ok" if finished else "exited before the tests finished (sys.exit or os._exit in the code)"
    last_line = _last_line(stderr)
    if last_line.startswith("MemoryError"):
        return f"out of memory (limit {memory_mb} MB)"
    return last_line[:200] or f"exit code {returncode}"


def _signal_reason(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if name == "SIGXCPU":
        return "timeout (CPU time limit)"
    if name == "SIGKILL":
        return "killed (SIGKILL: memory or CPU limit)"
    return f"crashed ({name})"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _clip(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> str:
    """Keep the head and tail of a long output."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n...[{len(text) - limit} characters cut]...\n{text[-half:]}"
