import json

import nbformat
import pytest

from helpers.config import data_dir
from helpers.run_notebooks import (INTERRUPTED_EXIT, NotebookFailed, execute_notebook, find_notebooks,
                                   notebook_fingerprints, run)


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_profile_is_injected_after_the_parameters_cell(tmp_path):
    path = _notebook(tmp_path / "01_probe.ipynb", 'PROFILE = "default"',
                     f"open({str(tmp_path / 'seen.txt')!r}, 'w').write(PROFILE)")
    timing = execute_notebook(path, "smoke", tmp_path / "executed")
    assert (tmp_path / "seen.txt").read_text() == "smoke"
    assert timing.ok and (tmp_path / "executed" / "01_probe.ipynb").exists()
    assert not nbformat.read(path, as_version=4).cells[1].get("outputs"), "tracked notebook must stay clean"


def test_failure_reports_the_failing_cell(tmp_path):
    path = _notebook(tmp_path / "02_broken.ipynb", 'PROFILE = "default"', "x = 1", "y = undefined_name + x")
    with pytest.raises(NotebookFailed) as failure:
        execute_notebook(path, "smoke", tmp_path / "executed")
    report = str(failure.value)
    assert "02_broken.ipynb" in report and "y = undefined_name + x" in report and "NameError" in report


def test_unknown_profile_is_refused(tmp_path):
    path = _notebook(tmp_path / "03_x.ipynb", 'PROFILE = "default"')
    with pytest.raises(ValueError, match="Unknown profile"):
        execute_notebook(path, "huge", tmp_path)


def test_find_notebooks_selects_by_prefix(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "10_c.ipynb", "scratch.ipynb"):
        (tmp_path / name).write_text(json.dumps({}))
    assert [p.name for p in find_notebooks(None, tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in find_notebooks(["01", "00_a"], tmp_path)] == ["00_a.ipynb", "01_b.ipynb"]
    with pytest.raises(SystemExit, match="No notebook matches"):
        find_notebooks(["99"], tmp_path)


# --- resuming: tiny notebooks that log each execution and write one file under data/ --------------


def _logging_notebook(folder, stem, extra=""):
    """A notebook that appends its stem to ran.log and writes data/<stem>/out.txt."""
    return _notebook(folder / f"{stem}.ipynb", 'PROFILE = "default"',
                     "from helpers.config import data_dir\n"
                     f"(data_dir() / {stem!r}).mkdir(parents=True, exist_ok=True)\n"
                     f"(data_dir() / {stem!r} / 'out.txt').write_text(PROFILE)\n"
                     f"open({str(folder / 'ran.log')!r}, 'a').write({stem!r} + '\\n')\n" + extra)


def _ran(folder):
    """Stems executed since the last call (the log is emptied)."""
    log = folder / "ran.log"
    stems = log.read_text().split() if log.exists() else []
    log.write_text("")
    return stems


@pytest.fixture
def suite(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem in ("01_first", "02_second"):
        _logging_notebook(folder, stem)
    return folder


def test_done_notebooks_are_skipped_until_forced_and_missing_outputs_rerun(suite, tmp_path, capsys):
    out = tmp_path / "executed"
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["01_first", "02_second"]
    state = json.loads((out / "state.json").read_text())["notebooks"]
    assert state["02_second"]["outputs"]["data"] == ["02_second/out.txt"], "files written must be recorded"

    capsys.readouterr()
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == [], "same fingerprint: nothing reruns"
    assert "(2/2) done on" in capsys.readouterr().out

    (data_dir() / "02_second" / "out.txt").unlink()
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["02_second"], "a notebook whose recorded files are gone must run again"

    run(None, "smoke", out, force=True, folder=suite)
    assert _ran(suite) == ["01_first", "02_second"], "--force reruns everything"
    printed = capsys.readouterr().out
    assert "[smoke] 01_first (1/2) ... about " in printed and " left" in printed, "the ETA line is missing"


def test_changing_a_notebook_reruns_it_and_the_ones_after(suite, tmp_path):
    out = tmp_path / "executed"
    run(None, "smoke", out, folder=suite)
    _ran(suite)
    _logging_notebook(suite, "02_second", extra="x = 1\n")
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["02_second"], "only the changed notebook and later ones rerun"
    _logging_notebook(suite, "01_first", extra="x = 2\n")
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["01_first", "02_second"], "a later notebook reads the earlier one's outputs"


def test_an_earlier_notebook_run_alone_makes_the_later_ones_run_again(suite, tmp_path):
    out = tmp_path / "executed"
    run(None, "smoke", out, folder=suite)
    run(["01"], "smoke", out, force=True, folder=suite)
    _ran(suite)
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["02_second"], "02 read outputs that 01 has since rewritten"


def test_fingerprints_follow_profile_package_and_earlier_notebooks(suite, monkeypatch):
    notebooks = sorted(suite.glob("*.ipynb"))
    smoke = notebook_fingerprints(notebooks, "smoke")
    assert smoke == notebook_fingerprints(notebooks, "smoke"), "fingerprints must be deterministic"
    default = notebook_fingerprints(notebooks, "default")
    assert all(smoke[s] != default[s] for s in smoke), "the profile must change every fingerprint"
    monkeypatch.setenv("SLM_NOTEBOOKS_DATA_DIR", "/elsewhere")
    assert notebook_fingerprints(notebooks, "smoke")["01_first"] != smoke["01_first"]
    monkeypatch.setattr("helpers.run_notebooks.package_fingerprint", lambda: "edited package")
    assert notebook_fingerprints(notebooks, "smoke")["01_first"] != smoke["01_first"]


def test_other_profile_in_the_same_folder_reruns(suite, tmp_path):
    out = tmp_path / "executed"
    run(["01"], "smoke", out, folder=suite)
    run(["01"], "default", out, folder=suite)
    assert _ran(suite) == ["01_first", "01_first"]


def test_sigint_stops_the_kernel_and_the_run_resumes_after_the_done_notebooks(suite, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file, hold = tmp_path / "kernel.pid", tmp_path / "hold"
    hold.touch()
    _logging_notebook(suite, "03_slow", extra=(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"while os.path.exists({str(hold)!r}):\n    time.sleep(0.1)\n"))
    out = tmp_path / "executed"
    runner = subprocess.Popen([sys.executable, "-m", "helpers.run_notebooks", "--profile", "smoke",
                               "--output-dir", str(out), "--notebooks-dir", str(suite)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.2)
    kernel_pid = int(pid_file.read_text())
    runner.send_signal(signal.SIGINT)
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == INTERRUPTED_EXIT, stderr
    assert "Stopped: interrupted during 03_slow" in stderr and "again to resume" in stderr
    assert "Traceback" not in stderr, "an interrupt must end with one line, not a traceback"
    time.sleep(1)
    with pytest.raises(ProcessLookupError):
        os.kill(kernel_pid, 0)  # the kernel must be gone, not left running in its own session
    assert set(json.loads((out / "state.json").read_text())["notebooks"]) == {"01_first", "02_second"}

    _ran(suite)
    hold.unlink()
    run(None, "smoke", out, folder=suite)
    assert _ran(suite) == ["03_slow"], "the resumed run must skip the notebooks finished before the interrupt"
