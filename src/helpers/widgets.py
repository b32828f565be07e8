"""ipywidgets browsers for the notebooks: page through cases, filter them, read them as HTML.

    case_browser(failure_cases(records))    # in a notebook cell: task and outcome filters, a slider

The rendering is a pure function (``render_case``) so that it is tested without a browser; the
widget only wires filters and a slider to it.
"""

from __future__ import annotations

import html

CASE_SECTIONS = (("Question", "question"), ("First trial", "first_trial"), ("Reflection", "reflection"),
                 ("Second trial", "second_trial"))


def _verdict(correct: bool) -> str:
    colour, word = ("#1a7f37", "CORRECT") if correct else ("#cf222e", "INCORRECT")
    return f'<b style="color:{colour}">{word}</b>'


def render_case(case: dict) -> str:
    """HTML for one failure case: question, failed trial, reflection, second trial, verdicts."""
    header = (f"<div><b>{html.escape(str(case['id']))}</b> · task <code>{html.escape(case['task'])}</code> · "
              f"gold <code>{html.escape(str(case['gold']))}</code> · first answer "
              f"<code>{html.escape(str(case['first_answer']))}</code> {_verdict(False)} · second answer "
              f"<code>{html.escape(str(case['second_answer']))}</code> {_verdict(case['fixed'])}</div>")
    if case.get("instruction"):
        header += f"<div>instruction: <code>{html.escape(case['instruction'])}</code></div>"
    blocks = [f"<h4 style='margin:8px 0 2px'>{title}</h4>"
              f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(str(case[key]))}</pre>"
              for title, key in CASE_SECTIONS]
    return header + "".join(blocks)


def filter_cases(cases: list[dict], task: str = "all", outcome: str = "all") -> list[dict]:
    """Cases of one task ("all" for every task) and outcome ("fixed", "not fixed" or "all")."""
    return [c for c in cases if (task == "all" or c["task"] == task)
            and (outcome == "all" or c["fixed"] == (outcome == "fixed"))]


def case_browser(cases: list[dict]):
    """A widget: task and outcome dropdowns, a slider over the matching cases, the case as HTML."""
    import ipywidgets as widgets

    task = widgets.Dropdown(options=["all", *sorted({c["task"] for c in cases})], description="task")
    outcome = widgets.Dropdown(options=["all", "fixed", "not fixed"], description="outcome")
    index = widgets.IntSlider(min=0, max=max(len(cases) - 1, 0), description="case")
    count = widgets.Label()
    view = widgets.HTML()

    def refresh(*_):
        selected = filter_cases(cases, task.value, outcome.value)
        index.max = max(len(selected) - 1, 0)
        count.value = f"{len(selected)} matching cases"
        view.value = render_case(selected[index.value]) if selected else "<i>no case matches</i>"

    for control in (task, outcome, index):
        control.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([task, outcome, count]), index, view])
