"""The code sandbox: passing code passes; hostile or broken code fails without harming the caller."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers.tasks.sandbox import OUTPUT_LIMIT_CHARS, SandboxResult, run_code

FAST = 3.0  # seconds: every hostile case must end well within this


def run(code: str, **kwargs) -> SandboxResult:
    return run_code(code, timeout_s=kwargs.pop("timeout_s", FAST), **kwargs)


def test_passing_code_passes_and_keeps_its_output():
    result = run("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('done')\n")
    assert result.passed, f"correct code must pass; reason={result.reason!r} stderr={result.stderr!r}"
    assert result.reason == "ok" and result.returncode == 0 and not result.timed_out
    assert result.stdout == "done\n", "the sentinel token must be removed from the reported stdout"


def test_failed_assertion_fails_with_its_message():
    result = run("def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5, 'add is wrong'\n")
    assert not result.passed
    assert result.reason == "AssertionError: add is wrong", \
        f"reason should be the exception's last line, got {result.reason!r}"


def test_syntax_error_fails():
    result = run("def broken(:\n    pass\n")
    assert not result.passed and result.reason.startswith("SyntaxError"), result.reason


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "exit()"])
def test_exit_before_the_tests_does_not_pass(exit_call):
    result = run(f"{exit_call}\nassert False, 'the tests never ran'\n")
    assert result.returncode == 0, "the exit status itself is 0 here"
    assert not result.passed, "exiting with status 0 before the tests ran must not count as a pass (sentinel check)"
    assert "exited before the tests finished" in result.reason


def test_infinite_loop_times_out_and_is_killed():
    start = time.monotonic()
    result = run("while True:\n    pass\n", timeout_s=2.0)
    elapsed = time.monotonic() - start
    assert result.timed_out and not result.passed and result.reason == "timeout"
    assert elapsed < 4.0, f"the wall-clock timeout should stop the run at ~2 s, took {elapsed:.1f} s"


def test_segfault_is_reported_as_a_crash():
    result = run("import ctypes\nctypes.string_at(0)\n")
    assert not result.passed and result.returncode < 0
    assert result.reason == "crashed (SIGSEGV)", result.reason


@pytest.mark.parametrize("code", [
    "x = bytearray(8 * 1024 ** 3)\n",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n",
])
def test_memory_bomb_hits_the_memory_limit(code):
    start = time.monotonic()
    result = run(code, memory_mb=256)
    assert not result.passed and not result.timed_out, "RLIMIT_AS should stop it before the timeout"
    assert result.reason == "out of memory (limit 256 MB)", result.reason
    assert time.monotonic() - start < FAST


def test_fork_bomb_is_stopped():
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
def test_processes_network_and_signals_are_refused(code, refused):
    result = run(code)
    assert not result.passed
    assert "PermissionError" in result.reason and refused in result.reason, result.reason


def test_files_outside_the_sandbox_are_untouched(tmp_path):
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
    program = "\n".join(f"try:\n    {attack}\nexcept PermissionError:\n    print('refused')" for attack in attacks)
    result = run(program)
    assert victim.exists(), "a file outside the sandbox folder was deleted or moved"
    assert victim.read_text() == "original", "a file outside the sandbox folder was modified"
    assert result.stdout.count("refused") == len(attacks), f"every attack should be refused:\n{result.stdout}"


def test_files_inside_the_sandbox_folder_can_be_used():
    code = ("import os, tempfile\n"
            "with open('data.txt', 'w') as handle:\n    handle.write('hello')\n"
            "assert open('data.txt').read() == 'hello'\n"
            "os.rename('data.txt', 'moved.txt'); os.remove('moved.txt')\n"
            "with tempfile.NamedTemporaryFile('w') as handle:\n    handle.write('x')\n")
    result = run(code)
    assert result.passed, f"ordinary file use inside the sandbox folder must work: {result.reason}"


def test_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:8080")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    result = run("import os\nprint(sorted(os.environ))\nprint(os.getcwd() == os.environ['HOME'])\n")
    assert result.passed, result.reason
    assert "SECRET_TOKEN" not in result.stdout and "HTTPS_PROXY" not in result.stdout, \
        "the caller's environment must not reach the sandboxed code"
    assert "True" in result.stdout, "HOME should be the sandbox folder"


def test_stdin_is_empty_and_output_is_truncated():
    result = run("print('x' * 50_000)\ninput()\n")
    assert not result.passed and result.reason.startswith("EOFError"), "input() should see end of file, not hang"
    assert len(result.stdout) < OUTPUT_LIMIT_CHARS + 100, "stdout must be truncated"
    assert "characters cut" in result.stdout


def test_endless_printing_is_bounded_by_the_file_size_limit():
    result = run("while True:\n    print('x' * 1000)\n")
    assert not result.passed and not result.timed_out
    assert "File too large" in result.reason, result.reason


def test_lingering_thread_makes_the_run_time_out():
    result = run("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n", timeout_s=1.0)
    assert result.timed_out, "a non-daemon thread keeps the process alive until the timeout"
    assert not result.passed, "a run that times out must not pass even if its tests ran"


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
def test_no_child_process_survives_the_run():
    # ctypes gets past the in-process fork guard; killing the process group is what cleans up.
    code = ("import ctypes, os, time\n"
            "pid = ctypes.CDLL(None).fork()\n"
            "if pid == 0:\n    time.sleep(60)\n    os._exit(0)\n"
            "print(pid)\n")
    result = run(code)
    assert result.passed, result.reason
    child = int(result.stdout.split()[0])
    deadline = time.monotonic() + 2.0
    while _is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _is_alive(child), f"child process {child} outlived the run: the process group was not killed"


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        run_code("pass", timeout_s=0)
