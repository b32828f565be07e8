import plotly.graph_objects as go
import pytest

from helpers.config import figures_dir
from helpers.plots import save_fig


def _figure(title="Throughput", x_title="batch size", y_title="tokens/s"):
    fig = go.Figure(go.Scatter(x=[1, 2, 4], y=[10, 18, 30]))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title)
    return fig


def test_save_fig_writes_png_and_html():
    written = save_fig(_figure(), "test_figure")
    assert written["html"] == figures_dir() / "test_figure.html"
    assert "plotly.min.js" in written["html"].read_text(), "HTML should load the shared plotly.min.js"
    assert (figures_dir() / "plotly.min.js").stat().st_size > 1_000_000
    if "png" not in written:
        pytest.skip("no Chrome/Chromium here: PNG export falls back to HTML")
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_fig_refuses_unlabelled_figures_and_bad_names():
    with pytest.raises(ValueError, match="title"):
        save_fig(_figure(title=None), "untitled")
    with pytest.raises(ValueError, match="yaxis title"):
        save_fig(_figure(y_title=None), "no_y")
    with pytest.raises(ValueError, match="plain file stem"):
        save_fig(_figure(), "../escape")


def test_save_fig_falls_back_to_html_with_a_warning(monkeypatch):
    fig = _figure()

    def no_browser(*args, **kwargs):
        raise RuntimeError("Kaleido v1 requires Chrome to be installed.")

    monkeypatch.setattr(fig, "to_image", no_browser)
    with pytest.warns(UserWarning, match="apt-get install -y chromium"):
        written = save_fig(fig, "fallback")
    assert set(written) == {"html"} and not (figures_dir() / "fallback.png").exists()


def test_a_saved_figure_survives_html_export_of_the_executed_notebook(tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    from helpers.run_notebooks import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('PROFILE = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(
                    "import plotly.graph_objects as go\nfrom helpers.plots import save_fig\n"
                    "fig = go.Figure(go.Bar(x=['a', 'b'], y=[1, 2]))\n"
                    "fig.update_layout(title='Exported', xaxis_title='x', yaxis_title='y')\n"
                    f"save_fig(fig, 'exported', folder={str(tmp_path / 'figs')!r})")]
    nbformat.write(nb, tmp_path / "00_export.ipynb")
    assert execute_notebook(tmp_path / "00_export.ipynb", "smoke", tmp_path / "executed").ok
    executed = nbformat.read(tmp_path / "executed" / "00_export.ipynb", as_version=4)
    output = executed.cells[-1].outputs[0]
    assert "application/vnd.plotly.v1+json" in output.data, "JupyterLab gets the interactive figure"
    html, _ = HTMLExporter().from_notebook_node(executed)
    if not (tmp_path / "figs" / "exported.png").exists():
        pytest.skip("no Chrome/Chromium here: the fallback is the figure's HTML")
    assert "data:image/png;base64," in html, "the exported HTML must show the figure as an image"
