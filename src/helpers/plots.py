"""Saving plotly figures as products: ``figures/<name>.png`` and ``figures/<name>.html``.

    fig = px.line(df, x="batch_size", y="tokens_per_s", title="Throughput against batch size")
    fig.update_layout(xaxis_title="batch size (prompts)", yaxis_title="new tokens per second")
    save_fig(fig, "00_throughput_vs_batch_size")      # the last line of a cell: shows the figure

Every saved figure must have a title and titled axes (``save_fig`` refuses one without, since a
figure without them cannot be read on its own). The PNG is rendered by kaleido, which drives a
Chrome or Chromium binary (``apt-get install -y chromium`` on Debian; ``make setup`` does it when
run as root). Without one, ``save_fig`` writes the HTML alone and warns how to get PNGs. The HTML
files share one ``plotly.min.js`` in the same folder, so they open offline and stay small.

``save_fig`` returns a ``SavedFigure``: the written paths by format, shown in a notebook as the
interactive figure (plotly's mimetype, rendered by JupyterLab) together with the PNG just written,
so that an executed notebook exported to HTML (``jupyter nbconvert --to html``, which does not
render plotly's mimetype) still shows every figure, offline, as an image. Without a PNG the
fallback is the figure's HTML, loading plotly.js from its CDN.
"""

from __future__ import annotations

import base64
import json
import re
import warnings
from pathlib import Path

from .artifacts import atomic_write_bytes, atomic_write_text
from .config import figures_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _missing_labels(fig) -> list[str]:
    layout = fig.layout
    missing = [] if layout.title.text else ["a title (fig.update_layout(title=...))"]
    for axis_name in ("xaxis", "yaxis"):
        axis = getattr(layout, axis_name, None)
        has_data_on_axis = any(getattr(trace, "type", None) not in ("pie", "sunburst", "treemap", "table")
                               for trace in fig.data)
        if has_data_on_axis and axis is not None and not axis.title.text:
            missing.append(f"a {axis_name} title (fig.update_layout({axis_name}_title=...))")
    return missing


class SavedFigure(dict):
    """The files ``save_fig`` wrote (format -> path); displays as the figure itself."""

    def __init__(self, fig, paths: dict[str, Path], png: bytes | None, width: int):
        super().__init__(paths)
        self.figure, self.png, self.width = fig, png, width

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict, dict]:
        # JupyterLab renders the plotly mimetype (interactive); nbconvert's HTML export skips it and
        # takes the next it knows, which is why the PNG (or, without one, HTML) rides along.
        bundle = {"application/vnd.plotly.v1+json": {**json.loads(self.figure.to_json()), "config": {}},
                  "text/plain": f"Figure {self.figure.layout.title.text!r}: " + ", ".join(map(str, self.values()))}
        if self.png is not None:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        else:
            bundle["text/html"] = self.figure.to_html(include_plotlyjs="cdn", full_html=False)
        return bundle, {"image/png": {"width": self.width}}  # the PNG is rendered at ``scale`` x width


def save_fig(fig, name: str, folder: Path | str | None = None, width: int = 900, height: int = 520,
             scale: float = 2.0) -> SavedFigure:
    """Write ``<folder>/<name>.html`` and, when a Chrome binary is present, ``<folder>/<name>.png``.

    ``folder`` defaults to ``helpers.config.figures_dir()``. Returns the written paths by format, as
    a ``SavedFigure`` that a notebook displays as the figure (interactive, with the PNG beside it).
    """
    if not _NAME.match(name) or name.endswith((".png", ".html")):
        raise ValueError(f"Figure name {name!r} must be a plain file stem like '00_throughput' "
                         "(letters, digits, '_', '-', '.'; no folder, no extension).")
    missing = _missing_labels(fig)
    if missing:
        raise ValueError(f"Figure {name!r} lacks {', '.join(missing)}: every saved figure needs them.")
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    html = fig.to_html(include_plotlyjs="directory", full_html=True)
    written["html"] = atomic_write_text(folder / f"{name}.html", html)
    if not (folder / "plotly.min.js").exists():
        from plotly.offline import get_plotlyjs
        atomic_write_text(folder / "plotly.min.js", get_plotlyjs())
    try:
        png = fig.to_image(format="png", width=width, height=height, scale=scale)
    except Exception as error:  # kaleido raises several types when no browser can start
        warnings.warn(f"Wrote {name}.html only: PNG export failed ({type(error).__name__}: {error}). "
                      "Static export needs Chrome or Chromium: `apt-get install -y chromium` "
                      "(or `plotly_get_chrome` where downloads are allowed).", stacklevel=2)
        return SavedFigure(fig, written, png=None, width=width)
    written["png"] = atomic_write_bytes(folder / f"{name}.png", png)
    return SavedFigure(fig, written, png, width)
