import json

import nbformat
import pytest

from helpers.run_notebooks import NotebookFailed, execute_notebook, find_notebooks


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
