"""The code sandbox: passing code passes; hostile or broken code fails without harming the caller.

The general tests run twice, under bubblewrap (skipped where it is not installed; ``make setup``
installs it) and under the weak Python-level guard alone. The hostile programs of the issue run under
bubblewrap both with the in-process guards and without them (``_run(..., guards=False)``), so each
test shows what the OS enforces by itself. The last test checks that no process survives.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers.tasks import sandbox
from helpers.tasks.sandbox import (ENV_BWRAP, ENV_WEAK_SANDBOX, OUTPUT_LIMIT_CHARS, SandboxResult,
                                   SandboxUnavailableError, run_code, sandbox_description)

FAST = 3.0  # seconds: every hostile case must end well within this
BWRAP = sandbox._bubblewrap()
NO_BWRAP = f"bubblewrap unavailable ({sandbox._bubblewrap_problem()}); 'make setup' installs it"
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason=NO_BWRAP)
MARKER = f"98.{uuid.uuid4().int % 10 ** 6:06d}"  # a sleep duration that names the processes these tests start


@pytest.fixture(params=["bubblewrap", "weak-guard"])
def run(request):
    """run(code, timeout_s=FAST, memory_mb=512) in one sandbox kind."""
    if request.param == "bubblewrap" and BWRAP is None:
        pytest.skip(NO_BWRAP)
    bwrap = BWRAP if request.param == "bubblewrap" else None

    def run_one(code: str, timeout_s: float = FAST, memory_mb: int = 512) -> SandboxResult:
        return sandbox._run(code, timeout_s, memory_mb, bwrap)
    return run_one


def test_passing_code_passes_and_keeps_its_output(run):
    result = run("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('done')\n")
    assert result.passed, f"correct code must pass; reason={result.reason!r} stderr={result.stderr!r}"
    assert result.reason == "ok" and result.returncode == 0 and not result.timed_out
    assert result.stdout == "done\n", "the sentinel token must be removed from the reported stdout"


def test_failed_assertion_fails_with_its_message(run):
    result = run("def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5, 'add is wrong'\n")
    assert not result.passed
    assert result.reason == "AssertionError: add is wrong", \
        f"reason should be the exception's last line, got {result.reason!r}"


def test_syntax_error_fails(run):
    result = run("def broken(:\n    pass\n")
    assert not result.passed and result.reason.startswith("SyntaxError"), result.reason


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "exit()"])
def test_exit_before_the_tests_does_not_pass(exit_call, run):
    result = run(f"{exit_call}\nassert False, 'the tests never ran'\n")
    assert result.returncode == 0, "the exit status itself is 0 here"
    assert not result.passed, "exiting with status 0 before the tests ran must not count as a pass (sentinel check)"
    assert "exited before the tests finished" in result.reason


def test_infinite_loop_times_out_and_is_killed(run):
    start = time.monotonic()
    result = run("while True:\n    pass\n", timeout_s=2.0)
    elapsed = time.monotonic() - start
    assert result.timed_out and not result.passed and result.reason == "timeout"
    assert elapsed < 4.0, f"the wall-clock timeout should stop the run at ~2 s, took {elapsed:.1f} s"


def test_segfault_is_reported_as_a_crash(run):
    result = run("import faulthandler\nfaulthandler._sigsegv()\n")  # a real SIGSEGV (ctypes is refused)
    assert not result.passed and result.returncode < 0
    assert result.reason == "crashed (SIGSEGV)", result.reason


@pytest.mark.parametrize("code", [
    "x = bytearray(8 * 1024 ** 3)\n",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n",
])
def test_memory_bomb_hits_the_memory_limit(code, run):
    start = time.monotonic()
    result = run(code, memory_mb=256)
    assert not result.passed and not result.timed_out, "RLIMIT_AS should stop it before the timeout"
    assert result.reason == "out of memory (limit 256 MB)", result.reason
    assert time.monotonic() - start < FAST


def test_fork_bomb_is_stopped(run):
    start = time.monotonic()
    result = run("import os\nwhile True:\n    os.fork()\n")
    assert not result.passed
    assert "os.fork is not allowed" in result.reason, f"the in-process guard should refuse fork: {result.reason!r}"
    assert time.monotonic() - start < FAST


@pytest.mark.parametrize("code, refused", [
    ("import subprocess\nsubprocess.run(['echo', 'hi'])\n", "subprocess"),
    ("import os\nos.system('echo hi')\n", "os.system"),
    ("import os\nos.execv('/bin/echo', ['echo'])\n", "os.execv"),
    ("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\np.join()\n", "fork"),
    ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n", "network"),
    ("import os\nos.kill(os.getppid(), 9)\n", "signalling other processes"),
])
def test_processes_network_and_signals_are_refused(code, refused, run):
    result = run(code)
    assert not result.passed
    assert "PermissionError" in result.reason and refused in result.reason, result.reason


def test_files_outside_the_sandbox_are_untouched(tmp_path, run):
    victim = tmp_path / "keep" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("original")
    attacks = [
        f"open({str(victim)!r}, 'w').write('overwritten')",
        f"open({str(victim)!r}, 'a').write('appended')",
        f"import os; os.remove({str(victim)!r})",
        f"import os; os.unlink({str(victim)!r})",
        f"import os; os.rename({str(victim)!r}, 'stolen.txt')",
        f"import os; os.truncate({str(victim)!r}, 0)",
        f"import shutil; shutil.rmtree({str(victim.parent)!r})",
        f"import pathlib; pathlib.Path({str(victim)!r}).write_text('overwritten')",
        f"import os; os.symlink({str(victim)!r}, 'link.txt'); open('link.txt', 'w').write('through a link')",
        f"import os; os.link({str(victim)!r}, 'hard.txt'); open('hard.txt', 'w').write('through a hard link')",
    ]
    # Refused by a guard (PermissionError) or by the OS (under bubblewrap the caller's /tmp is not there).
    program = "\n".join(f"try:\n    {attack}\nexcept OSError:\n    print('refused')" for attack in attacks)
    result = run(program)
    assert victim.exists(), "a file outside the sandbox folder was deleted or moved"
    assert victim.read_text() == "original", "a file outside the sandbox folder was modified"
    assert result.stdout.count("refused") == len(attacks), f"every attack should be refused:\n{result.stdout}"


def test_files_inside_the_sandbox_folder_can_be_used(run):
    code = ("import os, tempfile\n"
            "with open('data.txt', 'w') as handle:\n    handle.write('hello')\n"
            "assert open('data.txt').read() == 'hello'\n"
            "os.rename('data.txt', 'moved.txt'); os.remove('moved.txt')\n"
            "with tempfile.NamedTemporaryFile('w') as handle:\n    handle.write('x')\n")
    result = run(code)
    assert result.passed, f"ordinary file use inside the sandbox folder must work: {result.reason}"


def test_environment_is_minimal(monkeypatch, run):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:8080")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    result = run("import os\nprint(sorted(os.environ))\nprint(os.getcwd() == os.environ['HOME'])\n")
    assert result.passed, result.reason
    assert "SECRET_TOKEN" not in result.stdout and "HTTPS_PROXY" not in result.stdout, \
        "the caller's environment must not reach the sandboxed code"
    assert "True" in result.stdout, "HOME should be the sandbox folder"


def test_stdin_is_empty_and_output_is_truncated(run):
    result = run("print('x' * 50_000)\ninput()\n")
    assert not result.passed and result.reason.startswith("EOFError"), "input() should see end of file, not hang"
    assert len(result.stdout) < OUTPUT_LIMIT_CHARS + 100, "stdout must be truncated"
    assert "characters cut" in result.stdout


def test_endless_printing_is_bounded_by_the_file_size_limit(run):
    result = run("while True:\n    print('x' * 1000)\n")
    assert not result.passed and not result.timed_out
    assert "File too large" in result.reason, result.reason


def test_lingering_thread_makes_the_run_time_out(run):
    result = run("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n", timeout_s=1.0)
    assert result.timed_out, "a non-daemon thread keeps the process alive until the timeout"
    assert not result.passed, "a run that times out must not pass even if its tests ran"


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        run_code("pass", timeout_s=0)


# --- the hostile programs, under bubblewrap, with and without the in-process guards ---------

both_layers = pytest.mark.parametrize("guards", [True, False], ids=["with-guards", "bubblewrap-alone"])


@pytest.fixture
def victim():
    """A file outside the work folder that the sandbox can see (the caller's /tmp is hidden there)."""
    folder = Path(__file__).resolve().parent / f".sandbox-victim-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "victim.txt").write_text("original")
    yield folder / "victim.txt"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def run_bwrap(code: str, guards: bool, timeout_s: float = FAST) -> SandboxResult:
    return sandbox._run(code, timeout_s, 512, BWRAP, guards=guards)


@needs_bwrap
@both_layers
@pytest.mark.parametrize("write", [
    "fd = posix.open(PATH, posix.O_WRONLY | posix.O_TRUNC); posix.write(fd, b'overwritten')",
    "fd = posix.open(NEW, posix.O_WRONLY | posix.O_CREAT); posix.write(fd, b'created')",
    "_io.FileIO(PATH, 'w').write(b'overwritten')",
    "_io.FileIO(NEW, 'w').write(b'created')",
], ids=["posix.open", "posix.open-create", "FileIO", "FileIO-create"])
def test_low_level_writes_outside_the_work_folder_fail(victim, guards, write):
    new = victim.parent / "created.txt"
    code = f"import posix, _io\nPATH, NEW = {str(victim)!r}, {str(new)!r}\n{write}\n"
    result = run_bwrap(code, guards)
    assert victim.read_text() == "original", f"the write went through ({result.reason})"
    assert not new.exists(), f"a file was created outside the work folder ({result.reason})"
    expected = "PermissionError" if guards else "Read-only file system"
    assert not result.passed and expected in result.reason, result.reason


@needs_bwrap
@both_layers
def test_posix_unlink_outside_the_work_folder_fails(victim, guards):
    result = run_bwrap(f"import posix\nposix.unlink({str(victim)!r})\n", guards)
    assert victim.exists(), f"posix.unlink deleted a file outside the work folder ({result.reason})"
    expected = "PermissionError" if guards else "Read-only file system"
    assert not result.passed and expected in result.reason, result.reason


@pytest.fixture
def local_server():
    """A TCP server on 127.0.0.1 that hands a secret to whoever connects; it stops by itself."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(FAST + 2)
    connections = []

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:  # timed out or closed: nobody came
            return
        connections.append(conn)
        conn.sendall(b"server-secret")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    server.close()
    thread.join(timeout=FAST + 3)


@needs_bwrap
@both_layers
def test_raw_socket_cannot_reach_a_server_on_the_host(local_server, guards):
    port, connections = local_server
    code = ("import _socket\n"
            "s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
            "s.settimeout(1)\n"
            f"s.connect(('127.0.0.1', {port}))\n"
            "print(s.recv(100))\n")
    result = run_bwrap(code, guards)
    assert "server-secret" not in result.stdout and not connections, "the sandbox reached the host's loopback"
    # Without the guard the connection goes to the namespace's own, empty loopback.
    expected = "PermissionError" if guards else "Connection refused"
    assert not result.passed and expected in result.reason, result.reason


def _surviving(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _assert_none_survive(marker: str) -> None:
    deadline = time.monotonic() + 2.0
    while _surviving(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _surviving(marker), f"processes {_surviving(marker)} outlived the run: the namespace was not killed"


@needs_bwrap
@both_layers
def test_forked_child_in_its_own_session_does_not_survive(guards):
    marker = f"{MARKER}1"
    code = ("import os, posix, time\n"
            "pid = posix.fork()\n"
            f"if pid == 0:\n    os.setsid()\n    posix.execv('/bin/sleep', ['sleep', '{marker}'])\n"
            "time.sleep(0.3)\n"
            "os.kill(pid, 0)\n"
            "print('child alive')\n")
    result = run_bwrap(code, guards)
    if guards:
        assert not result.passed and "os.fork is not allowed" in result.reason, result.reason
    else:
        assert result.passed and "child alive" in result.stdout, f"the attack should run: {result.reason}"
    _assert_none_survive(marker)


@needs_bwrap
@both_layers
def test_background_shell_job_does_not_survive(guards):
    marker = f"{MARKER}2"
    code = f"import posix, time\nprint(posix.system('setsid sleep {marker} &'))\ntime.sleep(0.3)\n"
    result = run_bwrap(code, guards)
    if guards:
        assert not result.passed and "os.system is not allowed" in result.reason, result.reason
    else:
        assert result.passed and result.stdout.strip() == "0", f"the attack should run: {result.reason}"
    _assert_none_survive(marker)


# Tries every route to the pass token it can think of, prints anything token-like (32 hex digits),
# then exits with status 0 before the failing assert. A planted value in a calling frame shows that
# its search works.
PLANTED = "5eed" * 8
_TOKEN_THIEF = r"""
import functools, gc, os, re, sys
found = set()

def scan(obj, depth=0, seen=set()):
    if id(obj) in seen or depth > 6:
        return
    seen.add(id(obj))
    try:
        if isinstance(obj, (bytes, str)):
            text = obj.decode(errors="replace") if isinstance(obj, bytes) else obj
            found.update(re.findall(r"[0-9a-f]{32}", text))
            return
        if isinstance(obj, functools.partial):
            items = [obj.func, *obj.args, *obj.keywords.values()]
        elif isinstance(obj, dict):
            items = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            items = list(obj)
        elif type(obj).__name__ in ("map", "list_iterator"):
            items = list(obj.__reduce__())
        else:
            closure = getattr(obj, "__closure__", None)
            items = [cell.cell_contents for cell in closure] if isinstance(closure, tuple) else []
            items += [getattr(obj, "__self__", None), getattr(obj, "__dict__", None)]
    except Exception:
        return
    for item in items:
        scan(item, depth + 1)

def steal():
    frame = sys._getframe()
    while frame is not None:
        scan(dict(frame.f_locals)); scan(frame.f_globals)
        frame = frame.f_back
    for module in list(sys.modules.values()):
        scan(getattr(module, "__dict__", {}))
    for attempt in (gc.get_objects, lambda: sys._current_frames().values(),
                    lambda: [open("/proc/self/mem", "rb")]):
        try:
            for obj in attempt():
                scan(obj)
        except Exception:
            pass

def leak(unraisable):
    scan(unraisable.object); print(*found, sep="\n", flush=True); os._exit(0)

def victim_frame():
    planted = "PLANTED"
    steal()

victim_frame()
sys.unraisablehook = leak
print(*found, sep="\n", flush=True)
FINISH
assert False, "the tests never ran"
""".replace("PLANTED", PLANTED)


def _thief(sandbox_kind: str, finish: str) -> SandboxResult:
    if sandbox_kind == "bubblewrap" and BWRAP is None:
        pytest.skip(NO_BWRAP)
    code = _TOKEN_THIEF.replace("FINISH", finish)
    return sandbox._run(code, FAST, 512, BWRAP if sandbox_kind == "bubblewrap" else None)


@pytest.mark.parametrize("sandbox_kind", ["bubblewrap", "weak-guard"])
def test_token_cannot_be_stolen_to_fake_a_pass(sandbox_kind):
    result = _thief(sandbox_kind, "os._exit(0)")
    assert result.returncode == 0, f"the thief should reach os._exit(0): {result.reason} {result.stderr[-300:]}"
    assert PLANTED in result.stdout, "the thief's search is broken: it missed a value planted in a calling frame"
    assert not result.passed, "the program printed the run's token: the token is reachable from the code under test"


@pytest.mark.parametrize("sandbox_kind", ["bubblewrap", "weak-guard"])
def test_a_replaced_unraisable_hook_never_sees_the_token(sandbox_kind):
    # That hook would be given the thread's function (the chain holding the token) once the program raises.
    result = _thief(sandbox_kind, "raise ValueError('to reach the hook')")
    assert not result.passed and "replaced sys.unraisablehook" in result.stderr, result.stderr[-500:]


def test_other_audit_hooks_are_not_added(run):
    # They would see every event's arguments; sys.addaudithook drops a refused hook silently.
    result = run("import sys\nsys.addaudithook(lambda event, args: print('HOOK', event))\nimport json\n")
    assert result.passed and "HOOK" not in result.stdout, f"a second audit hook was added: {result.stdout[:200]}"


@pytest.mark.parametrize("code, refused", [
    ("import gc\ngc.get_objects()\n", "gc.get_objects"),
    ("import gc\ngc.get_referrers(1)\n", "gc.get_referrers"),
    ("import sys\nsys._current_frames()\n", "sys._current_frames"),
    ("import ctypes\nctypes.string_at(id(1), 8)\n", "ctypes.string_at"),
    ("import ctypes\nctypes.CDLL(None).fork\n", "ctypes.dlsym"),
    ("open('/proc/self/mem', 'rb')\n", "process memory"),
])
def test_introspection_that_could_reach_the_token_is_refused(code, refused, run):
    result = run(code)
    assert not result.passed and "PermissionError" in result.reason and refused in result.reason, result.reason


# --- no bubblewrap: refusal, or the weak guard when the user opts in -------------------------------

@pytest.fixture
def no_bubblewrap(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_BWRAP, str(tmp_path / "missing" / "bwrap"))
    monkeypatch.delenv(ENV_WEAK_SANDBOX, raising=False)


def test_without_bubblewrap_generated_code_is_refused(no_bubblewrap, tmp_path):
    marker = tmp_path / "ran.txt"
    with pytest.raises(SandboxUnavailableError) as error:
        run_code(f"open({str(marker)!r}, 'w').write('ran')\n")
    message = str(error.value)
    assert "\n" not in message, "the refusal must be one line"
    for hint in ("not found", "apt-get install -y bubblewrap", ENV_WEAK_SANDBOX, "--allow-weak-sandbox"):
        assert hint in message, f"the refusal should say {hint!r}: {message}"
    assert not marker.exists()
    description = sandbox_description()
    assert description["kind"] == "none" and "refused" in description["warning"], description


@pytest.mark.parametrize("opt_in", ["argument", "environment"])
def test_opting_in_runs_the_weak_guard_with_a_warning(no_bubblewrap, monkeypatch, opt_in):
    kwargs = {"allow_weak_sandbox": True} if opt_in == "argument" else {}
    if opt_in == "environment":
        monkeypatch.setenv(ENV_WEAK_SANDBOX, "1")
    result = run_code("assert sum([1, 2]) == 3\n", timeout_s=FAST, **kwargs)
    assert result.passed, result.reason
    description = sandbox_description(**kwargs)
    assert description["kind"] == "weak-guard", description
    assert "Python-level guards only" in description["warning"] and "not found" in description["warning"]


@needs_bwrap
def test_with_bubblewrap_the_description_names_it(monkeypatch):
    monkeypatch.setenv(ENV_WEAK_SANDBOX, "1")  # the opt-in never downgrades a working bubblewrap
    assert sandbox_description() == {"kind": "bubblewrap", "program": BWRAP}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_zz_no_process_started_by_these_tests_is_left():
    # Last in the file: every sleep these tests started carries MARKER; every driver runs this code.
    _assert_none_survive(MARKER)
    _assert_none_survive("_install_audit_hook(guard_os")


@needs_bwrap
def test_an_interpreter_that_lives_under_tmp_still_runs_in_the_sandbox(tmp_path):
    # The sandbox mounts its own /tmp; a checkout (and its .venv) under /tmp must stay visible.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    program = "from helpers.tasks.sandbox import run_code; r = run_code('print(6 * 7)'); print(r.passed, r.stdout.strip())"
    source = str(Path(sandbox.__file__).parents[2])
    done = subprocess.run([str(venv / "bin" / "python"), "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": source})
    assert str(venv).startswith("/tmp/"), "the test needs a folder under /tmp"
    assert done.stdout.split() == ["True", "42"], f"the sandboxed run failed: {done.stdout[-500:]}{done.stderr[-1000:]}"
