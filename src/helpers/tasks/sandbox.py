"""Run untrusted, model-generated Python code in an OS sandbox (bubblewrap) and grade it.

    from helpers.tasks.sandbox import run_code, sandbox_description
    result = run_code(solution + "\\n\\n" + tests, timeout_s=5.0)
    result.passed, result.reason        # True, "ok" / False, "AssertionError: ..."
    sandbox_description()               # {"kind": "bubblewrap", ...}: recorded in run manifests

**The wall: bubblewrap.** The code runs under ``bwrap`` in new pid, network, ipc, uts, mount (and,
where allowed, user) namespaces with every capability dropped: the file system is read-only, except a
private work folder (a fresh host temporary folder, mounted as ``/tmp``, also the working
directory, HOME and TMPDIR); the caller's ``/tmp``, ``/var/tmp``, ``/run``, ``/home`` and
``/root`` are hidden (the Python installation is mounted back when it lives there); ``/proc`` is an
empty folder; the network namespace has only its own, empty loopback. Resource limits apply as
before: address space (``memory_mb``), CPU time, file size (10 MB), no core dumps, processes. After
the run, finished or not, the bwrap process is killed, and with it (``--die-with-parent``) the
namespace's init, which makes the kernel kill every process left in the namespace: processes that
escaped into their own session (``setsid``, ``&``) do not survive.

Where bubblewrap is missing or cannot create namespaces, generated code is refused with
``SandboxUnavailableError`` unless the user opts in to the weaker, Python-level guard: the
``allow_weak_sandbox`` argument, or ``SLM_NOTEBOOKS_WEAK_SANDBOX=1`` (what the CLI flag
``--allow-weak-sandbox`` sets). ``SLM_NOTEBOOKS_BWRAP`` names the bwrap program (default: ``bwrap``
on PATH). ``sandbox_description()`` says which of the two is in use, for manifests.

**Defence in depth: guards inside the child.** A small driver installs, before running the code,
(1) monkeypatches of ``os``, ``io.open`` and ``socket`` (forks, exec, subprocesses, signals to other
processes, sockets and changes to paths outside the work folder raise ``PermissionError``), and
(2) an audit hook (``sys.addaudithook``, which cannot be removed), which refuses the same things at
the C level whatever module they are reached through (``posix``, ``_io``, ``_socket``), and
everything that could reveal the pass token (below). Without bubblewrap these guards are all there
is, and they are not a wall: a determined program can get past Python-level checks.

**The verdict.** A run passes only if the process exits with status 0 after the driver printed a
random token generated for this run, after the program ran to its end. The token cannot be forged
by the code under test: it arrives on a pipe that is read and closed before the code runs; it is
then held only inside C-level objects (a ``functools.partial`` chain that a C-started thread runs:
run the program, then write the token) that no Python frame, module or closure refers to. The code
runs in that thread, so walking frames (``sys._getframe``, tracebacks) finds no driver state; the
audit hook refuses the remaining ways to reach objects or memory: ``gc.get_objects``/
``get_referrers``/``get_referents``, ctypes memory access and symbol look-ups, ``_test*`` C-API
modules, other audit hooks, a replaced ``sys.unraisablehook`` (which would receive the chain when the
program raises) and opening ``/proc/<pid>/mem``. ``sys.exit(0)``, ``os._exit(0)`` or an exception
before the end of the program therefore never pass.

Not covered: reading files (the root file system is visible read-only), CPU and memory use within
the limits, and answers that game the tests from inside (an object whose ``__eq__`` is always true).
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import UserError

OUTPUT_LIMIT_CHARS = 2000
FILE_SIZE_LIMIT_BYTES = 10 * 1024 * 1024
PROCESS_HEADROOM = 32  # processes or threads the code may add to what the machine runs now
PROGRAM_NAME = "program.py"
ENV_BWRAP = "SLM_NOTEBOOKS_BWRAP"
ENV_WEAK_SANDBOX = "SLM_NOTEBOOKS_WEAK_SANDBOX"
SANDBOX_TMP = "/tmp"  # where the private work folder appears inside bubblewrap
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/run", "/home", "/root")  # replaced by empty folders inside bubblewrap
WEAK_WARNING = ("bubblewrap is unavailable: generated code ran under Python-level guards only, "
                "which a determined program can get past (file writes, network, processes)")
INSTALL_HINT = (f"install bubblewrap ('sudo apt-get install -y bubblewrap', or 'make setup' as root), point "
                f"{ENV_BWRAP} at a working bwrap, or opt in to the weaker Python-level guard with "
                f"{ENV_WEAK_SANDBOX}=1 (CLI: --allow-weak-sandbox)")


class SandboxUnavailableError(UserError):
    """bubblewrap cannot run here and the weak guard was not allowed: no generated code runs."""


# The child's program (``python -I -B -c DRIVER TOKEN_FD guards|none``), run in the work folder. It
# installs the guards and the audit hook, reads the token from TOKEN_FD, then runs the code in a
# thread started from C; the main thread waits and only sets the exit status.
_DRIVER = r'''
import _thread, builtins, functools, io, operator, os, runpy, socket, sys
import _posixsubprocess

_root = os.path.realpath(os.getcwd())
_realpath, _readlink, _join, _getpid = os.path.realpath, os.readlink, os.path.join, os.getpid
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _inside(path, dir_fd=None):
    if isinstance(path, int):  # an open descriptor was checked when it was opened
        return True
    path = os.fsdecode(os.fspath(path))
    if dir_fd is not None and not os.path.isabs(path):
        try:
            path = _join(_readlink(f"/proc/self/fd/{dir_fd}"), path)
        except OSError:  # no /proc (inside bubblewrap, whose read-only root is the real wall)
            return True
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


def _install_audit_hook(guard_os, failures):
    """Refuse, at the C level, whatever could reach the token and (with ``guard_os``) what the
    monkeypatches above miss. Names the hook uses are bound now, so monkeypatching cannot change
    them; it calls no method of an object the program made, so the program never runs inside it.
    ``failures`` gets an entry when an exception ends a thread (the hook sees it reported)."""
    secret = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
                        "sys._current_frames", "sys._current_exceptions"})
    refused = frozenset({"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                         "subprocess.Popen", "os.killpg", "socket.__new__", "pty.spawn"})
    one_path = frozenset({"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime",
                          "os.truncate", "shutil.rmtree"})
    two_paths = frozenset({"os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"})
    inside, getpid, fsdecode, default_hook = _inside, os.getpid, os.fsdecode, sys.__unraisablehook__
    startswith, endswith, denied, append = str.startswith, str.endswith, PermissionError, failures.append

    def hook(event, args):
        if event in secret or (startswith(event, "ctypes.") and event != "ctypes.dlopen"):
            raise denied(f"sandbox: {event} is not allowed")
        if event == "sys.unraisablehook":  # args[1].object is the token chain when the program raised
            if args[0] is not default_hook:
                raise denied("sandbox: a replaced sys.unraisablehook is not called")
            append(True)
        elif event == "import" and type(args[0]) is str and startswith(args[0], ("_test", "_xx")):
            raise denied(f"sandbox: importing {args[0]} is not allowed")
        elif event == "open":
            if type(args[0]) in (str, bytes):
                name = fsdecode(args[0])
                if name == "mem" or endswith(name, "/mem"):
                    raise denied("sandbox: opening process memory is not allowed")
            if guard_os and type(args[2]) is int and args[2] & _WRITE_FLAGS and not inside(args[0]):
                raise denied(f"sandbox: changing {args[0]!r} outside the sandbox folder is not allowed")
        elif not guard_os:
            return
        elif event in refused:
            raise denied(f"sandbox: {event} is not allowed")
        elif event in one_path and not inside(args[0]):
            raise denied(f"sandbox: changing {args[0]!r} outside the sandbox folder is not allowed")
        elif event in two_paths and not inside(args[1]):
            raise denied(f"sandbox: changing {args[1]!r} outside the sandbox folder is not allowed")
        elif event == "os.kill" and args[0] != getpid():
            raise denied("sandbox: signalling other processes is not allowed")

    sys.addaudithook(hook)


def _flush_streams():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass


def _main(token_fd, guard_os):
    """Exit status of the run. The token travels from the pipe to the chain on the evaluation
    stack only: no local, global or closure of any Python function ever holds it."""
    started, finished, failures = _thread.allocate_lock(), _thread.allocate_lock(), []
    started.acquire()
    finished.acquire()
    if guard_os:
        _install_guards()
    _install_audit_hook(guard_os, failures)
    _thread.start_new_thread(functools.partial(list, map(operator.call, [
        functools.partial(os.close, token_fd),
        started.release,
        functools.partial(runpy.run_path, PROGRAM_NAME, run_name="__main__"),
        _flush_streams,
        functools.partial(os.write, 1, b"\n" + os.read(token_fd, 256).strip() + b"\n"),
        finished.release])), ())
    started.acquire()
    # Done when the chain ran to its end, or when no thread of the program is left: after an
    # exception (reported by the default hook) or SystemExit (on which a thread ends silently).
    while not finished.acquire(timeout=0.02):
        if _thread._count() == 0:
            return 1 if failures else 0
    return 0


_status = _main(int(sys.argv[1]), sys.argv[2] == "guards")
if _status:
    _flush_streams()
    os._exit(_status)
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


def run_code(code: str, timeout_s: float = 5.0, memory_mb: int = 512,
             allow_weak_sandbox: bool | None = None) -> SandboxResult:
    """Run ``code`` as a Python program in the sandbox (see the module docstring); it passes when
    it runs to its end and exits with status 0 within ``timeout_s`` seconds.

    ``allow_weak_sandbox`` (default: ``SLM_NOTEBOOKS_WEAK_SANDBOX=1``) lets the code run under the
    Python-level guards alone when bubblewrap is unavailable; otherwise that raises
    ``SandboxUnavailableError``."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s} and {memory_mb}.")
    require_sandbox(allow_weak_sandbox)
    return _run(code, timeout_s, memory_mb, _bubblewrap())


def require_sandbox(allow_weak_sandbox: bool | None = None) -> None:
    """Raise ``SandboxUnavailableError`` now when ``run_code`` would refuse: a run that will check
    code answers says so before any model loads, not at its first answer."""
    if _bubblewrap() is None and not _weak_allowed(allow_weak_sandbox):
        raise SandboxUnavailableError(f"No OS sandbox for generated code: {_bubblewrap_problem()}; {INSTALL_HINT}.")


def sandbox_description(allow_weak_sandbox: bool | None = None) -> dict:
    """What ``run_code`` would use now, for a run's manifest: ``{"kind": "bubblewrap", "program": ...}``,
    ``{"kind": "weak-guard", "warning": ...}``, or ``{"kind": "none", "warning": ...}`` (code refused)."""
    bwrap = _bubblewrap()
    if bwrap is not None:
        return {"kind": "bubblewrap", "program": bwrap}
    if _weak_allowed(allow_weak_sandbox):
        return {"kind": "weak-guard", "warning": f"{WEAK_WARNING} ({_bubblewrap_problem()})"}
    return {"kind": "none", "warning": f"generated code is refused: {_bubblewrap_problem()}"}


def _weak_allowed(allow_weak_sandbox: bool | None) -> bool:
    if allow_weak_sandbox is not None:
        return allow_weak_sandbox
    return os.environ.get(ENV_WEAK_SANDBOX, "").strip().lower() in ("1", "true", "yes")


def _bwrap_setting() -> str:
    return os.environ.get(ENV_BWRAP) or "bwrap"


_PROBES: dict[str, str | None] = {}  # bwrap setting -> None if it works, else what went wrong


def _bubblewrap() -> str | None:
    """Path of a bwrap that can create the sandbox here, or None. Probed once per setting."""
    setting = _bwrap_setting()
    path = shutil.which(setting)
    if setting not in _PROBES:
        _PROBES[setting] = _probe(path, setting)
    return path if _PROBES[setting] is None else None


def _bubblewrap_problem() -> str:
    _bubblewrap()
    return _PROBES[_bwrap_setting()] or "none"


def _probe(path: str | None, setting: str) -> str | None:
    if path is None:
        return f"bubblewrap program {setting!r} not found"
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as work:
        try:
            done = subprocess.run(_bwrap_command(path, Path(work)) + ["/bin/true"], capture_output=True,
                                  text=True, timeout=30, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{path} failed to start: {error}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"{path} cannot create namespaces here ({lines[-1] if lines else f'exit code {done.returncode}'})"
    return None


def _bwrap_command(bwrap: str, work: Path) -> list[str]:
    """bubblewrap arguments up to the program: namespaces, read-only root, private work folder."""
    command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
               "--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/proc"]
    hidden = [folder for folder in HIDDEN_DIRS if Path(folder).is_dir() and folder != SANDBOX_TMP]
    for folder in hidden:
        command += ["--tmpfs", folder]
    for folder in _python_folders():  # the interpreter must stay visible where it lives in a hidden folder
        if any(folder == h or folder.startswith(h + "/") for h in hidden):
            command += ["--ro-bind", folder, folder]
    command += ["--bind", str(work), SANDBOX_TMP, "--chdir", SANDBOX_TMP]
    for folder in _python_folders():  # an interpreter under /tmp (a venv of a checkout there) stays visible
        if folder.startswith(SANDBOX_TMP + "/"):
            command += ["--ro-bind", folder, folder]
    for folder in hidden:
        command += ["--remount-ro", folder]
    command += ["--clearenv"]
    for name, value in _child_environment(Path(SANDBOX_TMP)).items():
        command += ["--setenv", name, value]
    return command + ["--"]


def _python_folders() -> list[str]:
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               str(Path(sys.executable).parent), str(Path(os.path.realpath(sys.executable)).parent)}
    return sorted(os.path.realpath(folder) for folder in folders)


def _run(code: str, timeout_s: float, memory_mb: int, bwrap: str | None, guards: bool = True) -> SandboxResult:
    """One run, under bubblewrap when ``bwrap`` is a path, else under the Python-level guards only.
    ``guards=False`` (tests only) leaves out the guards against files, processes and network, to
    show what bubblewrap alone enforces; the token stays protected."""
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="sandbox-", ignore_cleanup_errors=True) as root:
        root = Path(root)
        work = root / "work"
        work.mkdir()
        (work / PROGRAM_NAME).write_text(code, encoding="utf-8")
        token_read, token_write = os.pipe()
        try:
            os.write(token_write, token.encode())
        finally:
            os.close(token_write)
        python = [sys.executable, "-I", "-B", "-c", _DRIVER, str(token_read), "guards" if guards else "none"]
        command = python if bwrap is None else _bwrap_command(bwrap, work) + python
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            try:
                process = subprocess.Popen(
                    command, cwd=work, env=_child_environment(work), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=err, pass_fds=(token_read,), start_new_session=True,
                    preexec_fn=partial(_limit_resources, timeout_s, memory_mb, _process_limit()))
            finally:
                os.close(token_read)
            timed_out = _wait_and_kill_group(process, timeout_s)
        stdout = (root / "stdout").read_text(encoding="utf-8", errors="replace")
        stderr = (root / "stderr").read_text(encoding="utf-8", errors="replace")
    finished = token in stdout
    stdout = stdout.replace(f"\n{token}\n", "")
    returncode = process.returncode
    if bwrap is not None and returncode > 128:
        returncode = 128 - returncode  # bwrap reports a child killed by signal N as 128 + N
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
    """preexec_fn: runs in the child between fork and exec (bwrap or Python inherits the limits)."""
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


def _wait_and_kill_group(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to ``timeout_s``; then kill the child's whole process group (under bubblewrap that
    kills bwrap, whose namespace dies with it). True if timed out."""
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
