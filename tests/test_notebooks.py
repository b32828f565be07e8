"""Every committed notebook is clean, starts with a parameters cell, and runs in the smoke profile."""

import nbformat
import pytest

from helpers.config import ENV_DATA_DIR, data_dir, figures_dir
from helpers.run_notebooks import execute_notebook, find_notebooks

NOTEBOOKS = find_notebooks()


def test_the_suite_has_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_parameters_first(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    with_outputs = [i for i, c in enumerate(code) if c.outputs or c.execution_count]
    assert not with_outputs, f"{path.name}: code cells {with_outputs} carry outputs; clear them before committing"
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert "PROFILE" in code[0].source, f"{path.name}: the parameters cell must set PROFILE"


@pytest.fixture(scope="module")
def suite_data(tmp_path_factory):
    return tmp_path_factory.mktemp("suite-data")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path, suite_data, monkeypatch):
    # One data folder for the whole suite, as under `make run`: a later notebook finds what an
    # earlier one made (a notebook run alone makes its inputs itself).
    monkeypatch.setenv(ENV_DATA_DIR, str(suite_data))
    timing = execute_notebook(path, "smoke", data_dir() / "executed")
    assert timing.ok
    executed = nbformat.read(data_dir() / "executed" / path.name, as_version=4)
    shown = {o.data["application/vnd.jupyter.widget-view+json"]["model_id"] for c in executed.cells
             for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})}
    saved = executed.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    assert shown <= set(saved), f"{path.name}: widgets {sorted(shown - set(saved))[:3]} shown without their state saved"
    assert list(figures_dir().glob("*.png")) or list(figures_dir().glob("*.html")), \
        f"{path.name} saved no figure through helpers.plots.save_fig"
