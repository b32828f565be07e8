"""The live steering panel of notebook 06: one slider per selected SAE feature; releasing a
slider re-scores one role with the sum of coefficient x direction added at " your values", and
the bars show each value's score beside the unsteered one.

    steering_panel(engine, persona, items, layer, directions, phrase_ids, max_coefficient=800)
"""

from __future__ import annotations

from typing import Mapping

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import torch

from ..values.roles import Persona
from .experiment import combined_direction, score_steered


def _bars(values: list[str], unsteered: pd.Series, steered: pd.Series, title: str) -> go.Figure:
    fig = go.Figure([go.Bar(name="unsteered", x=values, y=unsteered[values].tolist()),
                     go.Bar(name="steered", x=values, y=steered[values].tolist())])
    fig.update_layout(barmode="group", title=title, xaxis_title="value", yaxis_title="value score",
                      yaxis_range=[-1, 1], height=380, template="plotly_white")
    return fig


def steering_panel(engine, persona: Persona, items: pd.DataFrame, layer: int, directions: Mapping[str, torch.Tensor],
                   phrase_ids: list[int], max_coefficient: float = 800.0, batch_size: int | None = None):
    """A VBox of sliders (one per direction) and a bar chart that re-scores ``persona`` on release."""
    values = sorted(items["value"].unique())
    unsteered = score_steered(engine, [persona], items, layer, None, phrase_ids, batch_size).iloc[0]
    step = max_coefficient / 20
    sliders = {name: widgets.FloatSlider(value=0.0, min=-max_coefficient, max=max_coefficient, step=step,
                                         description=name, continuous_update=False)
               for name in directions}
    output = widgets.Output()
    status = widgets.HTML()

    def rescore(_change=None) -> None:
        coefficients = {name: slider.value for name, slider in sliders.items() if slider.value}
        if not coefficients:
            steered = unsteered
        else:
            status.value = "scoring..."
            direction = combined_direction(directions, coefficients)
            steered = score_steered(engine, [persona], items, layer, direction, phrase_ids, batch_size).iloc[0]
        label = ", ".join(f"{n} x {c:g}" for n, c in coefficients.items()) or "unsteered"
        output.clear_output(wait=True)
        with output:
            _bars(values, unsteered, steered, f"{persona.role.name}: {label}").show()
        status.value = f"{len(items)} items re-scored" if coefficients else ""

    for slider in sliders.values():
        slider.observe(rescore, names="value")
    rescore()
    return widgets.VBox([widgets.HTML(f"<b>Steering {persona.role.name}</b> at decoder layer {layer} "
                                      "(release a slider to re-score)"), *sliders.values(), status, output])
