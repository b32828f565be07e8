"""An ipywidgets explorer for trained C-STS methods: type two sentences and a condition, see every
method's score and the router's weight of each token.

    explorer(models)     # in a notebook cell; models: {method name: trained ConditionedScorer}

The parts are pure functions (``method_scores``, ``router_heatmap``) so that they are tested and
reused without a browser; the widget only wires three text boxes and a button to them.
"""

from __future__ import annotations

import pandas as pd
import torch


def method_scores(models: dict, sentence1: str, sentence2: str, condition: str) -> pd.DataFrame:
    """One row per method: its similarity score and that score on the 1-5 label scale."""
    rows = []
    with torch.no_grad():
        for name, model in models.items():
            score = float(model.eval()([sentence1], [sentence2], [condition])[0])
            rows.append({"method": name, "score": score, "label scale (1-5)": 1 + 4 * min(max(score, 0.0), 1.0)})
    return pd.DataFrame(rows)


def router_heatmap(router, sentences: list[str], condition: str):
    """Plotly heat map of the router weight ``1 + m`` of each token (last layer), one row per sentence."""
    import plotly.graph_objects as go

    width = 0
    rows = []
    for sentence in sentences:
        tokens, weights = router.token_weights(sentence, condition)
        rows.append((tokens, weights))
        width = max(width, len(tokens))
    z = [weights + [None] * (width - len(weights)) for _, weights in rows]
    text = [tokens + [""] * (width - len(tokens)) for tokens, _ in rows]
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale="Blues",
                               colorbar={"title": "1 + m"}, hovertemplate="%{text}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"Router token weights under the condition: {condition}",
                      xaxis_title="token position", yaxis_title="sentence",
                      yaxis={"tickvals": list(range(len(sentences))),
                             "ticktext": [f"sentence {i + 1}" for i in range(len(sentences))], "autorange": "reversed"},
                      height=220 + 60 * len(sentences))
    return fig


def explorer(models: dict, sentence1: str = "three red dogs are running in the park",
             sentence2: str = "two red cats are sleeping on the beach", condition: str = "the colour"):
    """Text boxes for two sentences and a condition, a button, each method's score and the heat map."""
    import ipywidgets as widgets
    from IPython.display import display

    first = widgets.Text(value=sentence1, description="sentence 1", layout={"width": "70%"})
    second = widgets.Text(value=sentence2, description="sentence 2", layout={"width": "70%"})
    cond = widgets.Text(value=condition, description="condition", layout={"width": "70%"})
    button = widgets.Button(description="Score")
    output = widgets.Output()

    def refresh(*_):
        output.clear_output(wait=True)
        with output:
            display(method_scores(models, first.value, second.value, cond.value).round(3))
            if "router" in models:
                display(router_heatmap(models["router"], [first.value, second.value], cond.value))

    button.on_click(refresh)
    refresh()
    return widgets.VBox([first, second, cond, button, output])
