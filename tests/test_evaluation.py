"""Reflection evaluation: metrics on hand-made records, the paper table, paired statistics, error
localization, the protocol on the real embedded LM, result caching, the CLI and self-evolution."""

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from helpers.artifacts import atomic_write_jsonl
from helpers.config import configs_dir, preset
from helpers.evaluation.localization import (claimed_step, evaluate_expression, first_error_step,
                                             localization_cases, localization_summary, split_steps)
from helpers.errors import UserError
from helpers.evaluation.protocol import (EVAL_PRESETS, EvalConfig, Variant, evaluate_variant, heldout_items,
                                         one_stage_trial, run_protocol, summarize, training_questions)
from helpers.studies.self_evolution import EvolutionConfig, run_self_evolution
from helpers.evaluation.statistics import (against_controls, beats_both_controls, bootstrap_ci, compare_variants,
                                           mcnemar_exact, mcnemar_power, mcnemar_sample_size, paired_comparison,
                                           paper_table, power_calculation, reflection_gains, transitions)
from helpers.reflection.pipeline import REFLECTION_PRESETS, read_run_records
from helpers.studies.reflection_variants import TrainingPlan
from helpers.tasks import TaskItem
from helpers.tasks.registry import build_items

SMOKE = preset(EVAL_PRESETS, "smoke")


def _record(qid, task, t1, t2, judged=None, variant="v"):
    """A hand-made evaluation record: t1 / t2 correctness (t2 None: no second trial)."""
    judged = t1 if judged is None else judged
    trial2 = None if t2 is None else {"text": "", "answer": None, "correct": t2}
    return {"id": qid, "task": task, "variant": variant, "trial1": {"text": "", "answer": None, "correct": t1},
            "judged_correct": judged, "trial2": trial2, "correct_t1": t1, "correct_t2": t1 or bool(t2),
            "correct_self": t1 if judged else bool(t2)}


HAND_MADE = [_record("a1", "a", True, None), _record("a2", "a", False, True), _record("a3", "a", False, False),
             _record("a4", "a", False, True), _record("b1", "b", True, False, judged=False),
             _record("b2", "b", False, None, judged=True)]


def test_summary_of_hand_made_records_gives_the_expected_accuracies():
    table = summarize(HAND_MADE).set_index("task")
    assert table.loc["a", "n"] == 4 and table.loc["a", "acc_t1"] == 0.25 and table.loc["a", "acc_t2"] == 0.75
    assert table.loc["b", "acc_t1"] == 0.5 and table.loc["b", "acc_t2"] == 0.5
    # b1 was right but judged wrong, and its retry failed; b2 was wrong but judged right: both lost
    assert table.loc["b", "acc_self"] == 0.0 and table.loc["b", "judge_agreement"] == 0.0
    assert table.loc["all", "acc_t2"] == pytest.approx(4 / 6) and table.loc["all", "delta"] == pytest.approx(2 / 6)


def test_paper_table_cells_read_t1_t2_and_delta_in_percent():
    table = paper_table({"sft_qa": HAND_MADE, "base_with_reflection": HAND_MADE})
    assert list(table.index) == ["base_with_reflection", "sft_qa"], "rows must follow the paper's order"
    assert table.loc["sft_qa", "a"] == "25.0 / 75.0 (+50.0)"
    assert table.loc["sft_qa", "all"] == "33.3 / 66.7 (+33.3)"


def test_paired_comparison_counts_wins_and_losses_and_tests_them():
    reference = [_record(f"q{i}", "t", False, False) for i in range(20)]
    better = [_record(f"q{i}", "t", False, i < 10) for i in range(20)]
    result = paired_comparison(better, reference)
    assert (result["wins"], result["losses"], result["delta"]) == (10, 0, 0.5)
    assert result["p_value"] == pytest.approx(2 * 0.5 ** 10) and result["ci_low"] > 0
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    table = compare_variants({"base_with_reflection": reference, "trained": better})
    assert table.set_index("variant").loc["trained", "wins"] == 10
    with pytest.raises(ValueError, match="different questions"):
        paired_comparison(better[:5], reference)


def _graded(correct_ids, n=40):
    """Records of one variant over questions q0..q{n-1}, correct exactly on ``correct_ids`` at trial 2."""
    return [_record(f"q{i}", "a", False, i in correct_ids) for i in range(n)]


def test_a_variant_counts_as_better_only_against_both_controls_after_holm():
    results = {"base_no_reflection": _graded(set(range(20))), "base_with_reflection": _graded(set(range(25))),
               "strong": _graded(set(range(40))), "middling": _graded(set(range(21)))}
    table = against_controls(results).set_index(["variant", "control"])
    assert len(table) == 4, "two variants x two controls"
    strong_plain, strong_refl = table.loc[("strong", "base_no_reflection")], table.loc[("strong", "base_with_reflection")]
    assert (strong_plain.wins, strong_plain.losses, strong_refl.wins, strong_refl.losses) == (20, 0, 15, 0)
    assert strong_plain.p_value == pytest.approx(2 * 0.5**20) and strong_refl.p_value == pytest.approx(2 * 0.5**15)
    # Holm: the smallest of the four p-values times 4, the next times 3 (and never below the previous).
    assert strong_plain.p_holm == pytest.approx(4 * 2 * 0.5**20)
    assert strong_refl.p_holm == pytest.approx(3 * 2 * 0.5**15)
    assert beats_both_controls(against_controls(results)) == ["strong"]
    assert not table.loc[("middling", "base_no_reflection")].better, "one question ahead is no evidence"


def test_a_variant_ahead_of_one_control_only_does_not_beat_both():
    results = {"base_no_reflection": _graded(set()), "base_with_reflection": _graded(set(range(40))),
               "retry_like": _graded(set(range(30)))}
    table = against_controls(results)
    assert table.set_index("control").loc["base_no_reflection", "better"], "30 wins, no loss: better than plain retry"
    assert beats_both_controls(table) == []


def test_transitions_count_moves_between_trial_one_and_the_final_answers():
    moves = transitions(HAND_MADE)
    # a2, a4 corrected with the key; b1 right at trial 1, judged wrong and retried into a wrong answer.
    assert moves == {"i_to_c": 2 / 6, "c_to_i": 0.0, "self_i_to_c": 2 / 6, "self_c_to_i": 1 / 6}


def test_mcnemar_sample_size_matches_connors_formula_worked_by_hand():
    # ((1.96 * sqrt(0.2) + 0.8416 * sqrt(0.2 - 0.08**2)) / 0.08) ** 2 = 242.9
    assert mcnemar_sample_size(0.2, 0.08) == 243
    assert mcnemar_power(243, 0.2, 0.08) == pytest.approx(0.80, abs=0.005)
    assert mcnemar_power(96, 0.2, 0.08) < 0.5 < mcnemar_power(400, 0.2, 0.08)


def test_mcnemar_power_agrees_with_simulated_exact_tests():
    rng = np.random.default_rng(0)
    n, discordant, delta = 243, 0.2, 0.08
    p10, p01 = (discordant + delta) / 2, (discordant - delta) / 2
    cells = rng.multinomial(n, [p10, p01, 1 - discordant], size=1000)
    detected = np.mean([mcnemar_exact(int(w), int(l)) < 0.05 for w, l, _ in cells])
    assert abs(detected - mcnemar_power(n, discordant, delta)) < 0.06, f"simulated power {detected:.3f}"


def test_power_calculation_says_when_discordance_is_too_small_to_size_the_test():
    same = {"base_with_reflection": _graded({1, 2}), "copy": _graded({1, 2})}
    report = power_calculation(same)
    assert report["discordant"] == 0.0 and report["power"] is None and "too few" in report["note"]
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_sample_size(0.005, 0.08)


def test_bootstrap_interval_brackets_the_mean_and_collapses_for_constants():
    low, high = bootstrap_ci(np.r_[np.ones(30), np.zeros(70)])
    assert low < 0.3 < high and high - low < 0.25
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    gains = reflection_gains({"v": HAND_MADE}).iloc[0]
    assert gains["delta_ci_low"] <= gains["delta"] <= gains["delta_ci_high"]


def test_arithmetic_steps_are_checked_exactly():
    assert evaluate_expression("5 - 33") == -28 and evaluate_expression("3 × 4 ÷ 8") == Fraction(3, 2)
    assert evaluate_expression("__import__('os')") is None and evaluate_expression("1 / 0") is None
    steps = split_steps("Thought: 12 + 5 is 17. Then 17 - 9 = 9.\nAction: Finish[9]")
    assert [s.text for s in steps] == ["Thought: 12 + 5 is 17.", "Then 17 - 9 = 9.", "Action: Finish[9]"]
    assert [s.wrong_claim for s in steps] == [False, True, False] and first_error_step(steps) == 1
    # every claim holds: the error is the final answer
    assert first_error_step(split_steps("Thought: 4 - 1 is 3.\nAction: Finish[4]")) == 1


def test_the_step_a_reflection_points_at():
    steps = split_steps("Thought: 12 + 5 is 17. Then 17 - 9 = 9.\nAction: Finish[9]")
    assert claimed_step("I computed 17-9 wrongly; it is not 9.", steps) == 1, "a quoted expression must win"
    assert claimed_step("The result 17 is fine but I wrote the final answer as 9.", steps) == 0
    assert claimed_step("I should be more careful next time.", steps) is None


def test_localization_cases_use_the_programmatic_check_for_arithmetic(engine):
    failed = {"id": "x1", "task": "basic_arithmetic", "question": "Calculate 12 + 5 - 9.", "answer": "8",
              "trial1": {"text": "Thought: 12 + 5 is 17. Then 17 - 9 = 9.\nAction: Finish[9]", "correct": False},
              "correct_t1": False, "reflection": "The step 17 - 9 = 9 is wrong: 17 - 9 is 8."}
    other = {**failed, "id": "x2", "task": "syllogism_mc", "answer": "A", "reflection": "I misread the premise."}
    cases = localization_cases({"v": [failed, other, {**failed, "id": "x3", "correct_t1": True}]}, engine)
    assert list(cases["id"]) == ["x1", "x2"], "only failed first trials with a reflection are cases"
    first = cases.set_index("id").loc["x1"]
    assert first["method"] == "programmatic" and first["actual_step"] == 1 and first["claimed_step"] == 1
    assert bool(first["localized"])
    assert cases.set_index("id").loc["x2", "method"] == "lm_judge"
    summary = localization_summary(cases).iloc[0]
    assert summary["programmatic_cases"] == 1 and summary["programmatic_accuracy"] == 1.0


def test_heldout_items_skip_training_questions_and_add_the_unseen_task():
    cfg = EvalConfig(tasks=("gcd",), unseen_tasks=("lcm",), n_per_task=5, seed=10_000)
    items = heldout_items(cfg)
    assert {i.task for i in items} == {"gcd", "lcm"} and len(items) == 10
    seen = {items[0].question, items[2].question}
    assert not seen & {i.question for i in heldout_items(cfg, exclude=seen)}
    with pytest.raises(ValueError, match="No held-out questions"):
        heldout_items(EvalConfig(tasks=(), unseen_tasks=()))
    every_gcd_question = {i.question for i in heldout_items(EvalConfig(tasks=("gcd",), unseen_tasks=(), n_per_task=15))}
    with pytest.warns(UserWarning, match="only 0 of 5"):
        assert heldout_items(EvalConfig(tasks=("gcd",), unseen_tasks=(), n_per_task=5), exclude=every_gcd_question) == []


@pytest.mark.parametrize("mode", ["reflection", "plain", "one_stage"])
def test_protocol_on_the_embedded_lm_keeps_its_invariants(engine, mode):
    items = build_items(["basic_arithmetic", "syllogism_mc"], 2, seed=3)
    records = run_protocol(engine, items, Variant("base", "smollm2-135m-instruct", mode), SMOKE)
    assert [r["id"] for r in records] == [i.id for i in items]
    for r in records:
        needs_retry = not r["correct_t1"] or not r["judged_correct"]
        assert (r["trial2"] is not None) == needs_retry, "trial 2 runs exactly for oracle or self-judged failures"
        assert r["correct_t2"] == (r["correct_t1"] or bool(r["trial2"] and r["trial2"]["correct"]))
        assert r["correct_self"] == (r["correct_t1"] if r["judged_correct"] else r["trial2"]["correct"])
        assert (r["reflection"] is None) == (mode == "plain" or not needs_retry)
        assert isinstance(r["self_margin"], float)


def test_evaluation_results_are_cached_and_reused(engine, tmp_path):
    items = build_items(["syllogism_mc"], 2, seed=4)
    variant = Variant("base", "smollm2-135m-instruct")
    first = evaluate_variant(variant, items, SMOKE, tmp_path, engine=engine)

    class Unusable:
        def __getattr__(self, name):
            raise AssertionError("a cached evaluation must not run the model again")

    assert evaluate_variant(variant, items, SMOKE, tmp_path, engine=Unusable()) == first
    with pytest.raises(AssertionError, match="cached"):  # other items: recomputed
        evaluate_variant(variant, items[:1], SMOKE, tmp_path, engine=Unusable())


def test_cli_evaluate_writes_per_task_and_total_accuracies(tmp_path):
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "helpers", "reflect", "evaluate", "--model", "smollm2-135m-instruct",
               "--tasks", "basic_arithmetic,syllogism_mc", "--n-questions", "3", "--seed", "7", "--profile", "smoke",
               "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["total"]["n"] == 3 and len(result["records"]) == 3
    assert set(result["tasks"]) == {"basic_arithmetic", "syllogism_mc"}
    for row in [result["total"], *result["tasks"].values()]:
        assert set(row) >= {"n", "acc_t1", "acc_t2"} and 0 <= row["acc_t1"] <= row["acc_t2"] <= 1


def _run_folder(folder):
    """A base-model generation run in miniature, with one corrected failure per question."""
    raw = []
    for n, (question, gold, wrong) in enumerate([("What is 2+2?", "4", "5"), ("What is 3+5?", "8", "9")]):
        trial = lambda text, ok: f"Thought: {text}\nAction: Finish[...]\nObservation: Answer is {'CORRECT' if ok else 'INCORRECT'}"
        raw.append({"id": f"q{n}", "question": question, "answer": gold, "task": "arith", "domain": "math",
                    "output": [{"generated_answer": wrong, "reflections": [], "is_correct": False, "trial": 1,
                                "reasoning": trial(f"It is {wrong}.", False)},
                               {"generated_answer": gold, "is_correct": True, "trial": 2,
                                "instruction": "trace/calculation/low_level",
                                "reflections": [f"I added wrongly and wrote {wrong}. Recompute the sum."],
                                "reasoning": trial(f"Recomputing, it is {gold}.", True)}]})
    atomic_write_jsonl(folder / "raw.jsonl", raw)
    return folder


def test_self_evolution_runs_one_tiny_round_and_resumes(tmp_path):
    data = _run_folder(tmp_path / "round1-data")
    cfg = EvolutionConfig(recipe=str(configs_dir() / "sft_one_stage.yaml"), rounds=1,
                          training=TrainingPlan(max_steps=2, per_device_train_batch_size=2))
    items = build_items(["basic_arithmetic"], 2, seed=5)
    result = run_self_evolution(cfg, "smollm2-135m-instruct", items, SMOKE, tmp_path / "evo", first_round_data=data)
    assert list(result.table["round"]) == [0, 1] and result.table.loc[1, "d_plus_rows"] == 2
    merged = tmp_path / "evo" / "round-1" / "model" / "merged"
    assert (merged / "config.json").exists() and set(result.records) == {"round_0", "round_1"}
    assert all(0 <= v <= 1 for v in result.table["acc_t2"])
    stamp = (merged / "config.json").stat().st_mtime_ns
    again = run_self_evolution(cfg, "smollm2-135m-instruct", items, SMOKE, tmp_path / "evo", first_round_data=data)
    assert (merged / "config.json").stat().st_mtime_ns == stamp, "a finished round must not be trained again"
    pd.testing.assert_frame_equal(again.table, result.table)


def test_side_by_side_marks_the_step_the_reflection_points_at():
    from helpers.widgets import render_side_by_side

    record = {"id": "q1", "question": "Calculate 12 + 5 - 9.", "answer": "8", "variant": "a",
              "trial1": {"text": "Thought: 12 + 5 is 17. Then 17 - 9 = 9.\nAction: Finish[9]", "answer": "9",
                         "correct": False},
              "judged_correct": True, "self_margin": 0.5, "reflection": "The step 17 - 9 = 9 is wrong.",
              "trial2": {"text": "Thought: 17 - 9 = 8.\nAction: Finish[8]", "answer": "8", "correct": True}}
    page = render_side_by_side(record, {**record, "variant": "b", "reflection": None, "trial2": None})
    assert page.count("<mark") == 1 and "<mark title=\"the reflection points here\">Then 17 - 9 = 9.</mark>" in page
    with pytest.raises(ValueError, match="same question"):
        render_side_by_side(record, {**record, "id": "q2"})


# --- issue 14: one protocol per row, and no held-out question in any training round ---------------

def test_one_stage_trial_two_is_the_models_own_answer_never_a_separate_retry(recording_tiny_engine):
    items = build_items(["basic_arithmetic", "syllogism_mc"], 2, seed=3)
    records = run_protocol(recording_tiny_engine, items, Variant("noise", "noise", "one_stage"), SMOKE)
    prompts = [str(prompt) for call, _ in recording_tiny_engine.calls for prompt in call]
    assert not any("Now solve the question again." in p for p in prompts), \
        "a one-stage row must not fall back to the two-stage retry prompt: that mixes two protocols in one row"
    assert len(recording_tiny_engine.calls) == 2, "trial 1, then one generation holding reflection and answer"
    assert any(r["trial2"] is not None for r in records), "the noise model fails: its records need a trial 2"


def test_one_stage_output_without_an_answer_after_the_reflection_is_a_failed_second_trial():
    item = build_items(["basic_arithmetic"], 1, seed=3)[0]
    reflection, trial2 = one_stage_trial(item, f"I wrote {item.answer} too late; the plan is to recompute.")
    assert reflection.startswith("I wrote") and trial2["answer"] is None and not trial2["correct"], \
        "a number inside the reflection is not an answer in the task's format"
    reflection, trial2 = one_stage_trial(item, f"Recompute.\nThought: done.\nAction: Finish[{item.answer}]")
    assert reflection == "Recompute." and trial2["answer"] == item.answer and trial2["correct"]


def _raw(questions, run):
    """A generation run folder whose raw records ask ``questions`` (first trial failed, no retry)."""
    atomic_write_jsonl(run / "raw.jsonl", [
        {"id": f"r{n}", "question": q, "answer": "1", "output": [
            {"generated_answer": "0", "reflections": [], "is_correct": False, "trial": 1,
             "reasoning": "Thought: 0\nObservation: Answer is INCORRECT"}]} for n, q in enumerate(questions)])
    return run


def test_cli_evaluate_exclude_removes_every_question_the_listed_runs_trained_on(tmp_path, tiny_lm_dir):
    asked = [i.question for i in heldout_items(EvalConfig(tasks=("gcd",), unseen_tasks=(), n_per_task=4, seed=7))]
    _raw(asked[:2], tmp_path / "run")
    _raw(asked[2:3], tmp_path / "evo" / "round-2" / "data")  # a self-evolution folder: every round counts
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "helpers", "reflect", "evaluate", "--model", str(tiny_lm_dir), "--tasks", "gcd",
               "--n-questions", "4", "--seed", "7", "--profile", "smoke", "--exclude", str(tmp_path / "run"),
               str(tmp_path / "evo"), "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    evaluated = {r["question"] for r in json.loads(out.read_text())["records"]}
    assert len(evaluated) == 4 and not evaluated & set(asked[:3]), "trained questions were evaluated"


def test_self_evolution_refuses_round_one_data_holding_heldout_questions(tmp_path, tiny_lm_dir):
    data = _run_folder(tmp_path / "round1-data")
    items = [TaskItem(id="h1", task="arith", domain="math", question="What is 2+2?", answer="4",
                      answer_format="math", checker="math")]
    cfg = EvolutionConfig(recipe=str(configs_dir() / "sft_qa.yaml"), rounds=1, training=TrainingPlan(max_steps=1))
    with pytest.raises(UserError, match="held-out"):
        run_self_evolution(cfg, str(tiny_lm_dir), items, SMOKE, tmp_path / "evo", first_round_data=data)
    assert not (tmp_path / "evo").exists(), "refused before any round ran"


def test_self_evolution_rounds_use_their_own_folders_and_no_heldout_question(tmp_path, tiny_lm_dir):
    data = _run_folder(tmp_path / "notebook01")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    generation = preset(REFLECTION_PRESETS, "smoke", tasks=("gcd",), n_questions=6, seed=0)
    cfg = EvolutionConfig(recipe=str(configs_dir() / "sft_qa.yaml"), rounds=2, generation=generation,
                          training=TrainingPlan(max_steps=1, per_device_train_batch_size=2))
    items = build_items(["gcd"], 6, seed=generation.seed + 2)  # what round 2 would ask, were nothing excluded
    heldout = {item.question for item in items}
    result = run_self_evolution(cfg, str(tiny_lm_dir), items, SMOKE, tmp_path / "evo", first_round_data=data)
    assert list(result.table["round"]) == [0, 1, 2]
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before, "a round rewrote notebook 01's files"
    for k in (1, 2):
        folder = tmp_path / "evo" / f"round-{k}" / "data"
        assert (folder / "d_plus.jsonl").exists(), f"round {k} must curate into its own folder"
        trained = {r["question"] for r in read_run_records(folder)}
        assert trained and not trained & heldout, f"round {k} trained on held-out questions"
    every_round = training_questions(tmp_path / "evo")
    assert {r["question"] for r in read_run_records(data)} <= every_round
    assert {r["question"] for r in read_run_records(tmp_path / "evo" / "round-2" / "data")} <= every_round
    merged = tmp_path / "evo" / "round-2" / "model" / "merged" / "config.json"
    stamp = merged.stat().st_mtime_ns
    again = run_self_evolution(cfg, str(tiny_lm_dir), items, SMOKE, tmp_path / "evo", first_round_data=data)
    assert merged.stat().st_mtime_ns == stamp, "a finished round must not be trained again"
    pd.testing.assert_frame_equal(again.table, result.table)
