"""Saving plotly figures as products: ``figures/<name>.png`` and ``figures/<name>.html``.

    fig = px.line(df, x="batch_size", y="tokens_per_s", title="Throughput against batch size")
    fig.update_layout(xaxis_title="batch size (prompts)", yaxis_title="new tokens per second")
    save_fig(fig, "00_throughput_vs_batch_size")

Every saved figure must have a title and titled axes (``save_fig`` refuses one without, since a
figure without them cannot be read on its own). The PNG is rendered by kaleido, which drives a
Chrome or Chromium binary (``apt-get install -y chromium`` on Debian; ``make setup`` does it when
run as root). Without one, ``save_fig`` writes the HTML alone and warns how to get PNGs. The HTML
files share one ``plotly.min.js`` in the same folder, so they open offline and stay small.
"""

from __future__ import annotations

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


def save_fig(fig, name: str, folder: Path | str | None = None, width: int = 900, height: int = 520,
             scale: float = 2.0) -> dict[str, Path]:
    """Write ``<folder>/<name>.html`` and, when a Chrome binary is present, ``<folder>/<name>.png``.

    ``folder`` defaults to ``helpers.config.figures_dir()``. Returns the written paths by format.
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
        return written
    path = atomic_write_bytes(folder / f"{name}.png", png)
    written["png"] = path
    return written
