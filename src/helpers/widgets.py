"""ipywidgets browsers for the notebooks: page through cases, filter them, read them as HTML.

    case_browser(failure_cases(records))    # in a notebook cell: task and outcome filters, a slider
    comparison_browser(results)             # two evaluated variants side by side on the same question

The rendering is pure functions (``render_case``, ``render_side_by_side``), tested without a browser; the
widgets only wire filters and sliders to them.
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


def _trial_with_claimed_step(trial: str, reflection: str | None) -> str:
    """The trial as HTML, the step the reflection points at marked (``evaluation.localization``)."""
    from .evaluation.localization import claimed_step, split_steps

    steps = split_steps(trial)
    claimed = claimed_step(reflection, steps) if reflection else None
    parts = [f'<mark title="the reflection points here">{html.escape(s.text)}</mark>' if n == claimed
             else html.escape(s.text) for n, s in enumerate(steps)]
    note = "" if reflection is None else (" <i>(highlighted: the step the reflection points at)</i>" if claimed is not None
                                          else " <i>(the reflection points at no step)</i>")
    return "<pre style='white-space:pre-wrap;margin:0'>" + "\n".join(parts) + "</pre>" + note


def render_evaluation_record(record: dict) -> str:
    """HTML for one variant's answer to a held-out question: trial 1 with the step its reflection
    points at highlighted, the self-judgement, the reflection and trial 2, with verdicts."""
    first = record["trial1"]
    blocks = [f"<h4 style='margin:4px 0'>{html.escape(record['variant'])}</h4>",
              f"<div>trial 1: <code>{html.escape(str(first['answer']))}</code> {_verdict(first['correct'])} · "
              f"self-judged {'correct' if record['judged_correct'] else 'wrong'} "
              f"(margin {record['self_margin']:+.2f})</div>",
              _trial_with_claimed_step(first["text"], record.get("reflection"))]
    if record.get("reflection") is not None:
        blocks += ["<h5 style='margin:6px 0 2px'>Reflection</h5>",
                   f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(record['reflection'])}</pre>"]
    if record.get("trial2") is not None:
        second = record["trial2"]
        blocks += [f"<h5 style='margin:6px 0 2px'>Trial 2: <code>{html.escape(str(second['answer']))}</code> "
                   f"{_verdict(second['correct'])}</h5>",
                   f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(second['text'])}</pre>"]
    return "".join(blocks)


def render_side_by_side(record_a: dict, record_b: dict) -> str:
    """Two variants' records for the same question, in two columns under the question."""
    if record_a["id"] != record_b["id"]:
        raise ValueError(f"Side by side needs the same question, got {record_a['id']!r} and {record_b['id']!r}.")
    header = (f"<div><b>{html.escape(record_a['id'])}</b> · gold <code>{html.escape(str(record_a['answer']))}</code>"
              f"</div><pre style='white-space:pre-wrap'>{html.escape(record_a['question'])}</pre>")
    columns = "".join(f"<div style='flex:1;min-width:0;padding:0 8px;border-left:3px solid #ddd'>"
                      f"{render_evaluation_record(r)}</div>" for r in (record_a, record_b))
    return header + f"<div style='display:flex;gap:8px'>{columns}</div>"


def comparison_browser(results: dict[str, list[dict]]):
    """A widget: choose two variants and a task, optionally only questions where their Acc@t2
    differs, and page through the questions side by side."""
    import ipywidgets as widgets

    names = list(results)
    by_id = {name: {r["id"]: r for r in records} for name, records in results.items()}
    left = widgets.Dropdown(options=names, value=names[0], description="left")
    right = widgets.Dropdown(options=names, value=names[-1], description="right")
    task = widgets.Dropdown(options=["all", *sorted({r["task"] for r in results[names[0]]})], description="task")
    differ = widgets.Checkbox(value=True, description="only where Acc@t2 differs")
    index = widgets.IntSlider(min=0, max=0, description="question")
    count, view = widgets.Label(), widgets.HTML()

    def refresh(*_):
        a, b = by_id[left.value], by_id[right.value]
        ids = [i for i, r in a.items() if (task.value == "all" or r["task"] == task.value)
               and (not differ.value or r["correct_t2"] != b[i]["correct_t2"])]
        index.max = max(len(ids) - 1, 0)
        count.value = f"{len(ids)} questions"
        view.value = render_side_by_side(a[ids[index.value]], b[ids[index.value]]) if ids else "<i>no question matches</i>"

    for control in (left, right, task, differ, index):
        control.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([left, right]), widgets.HBox([task, differ, count]), index, view])
