"""Reflection data: instruction pool, prompts, the pipeline (on a tiny random LM), resume after a
kill, sharding, curation, and ReflectEvo format round trips."""

import dataclasses
import inspect
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.config import preset
from helpers.reflection import curation, formats
from helpers.reflection.analysis import by_instruction, by_task, failure_cases, reflection_lengths
from helpers.reflection.pipeline import (REFLECTION_PRESETS, Engines, _trial_output, choose_instructions, generate,
                                         parse_shard, read_run_records, select_items)
from helpers.reflection.prompts import (PLAN_LEVELS, REVIEW_FOCUSES, VERIFICATION_STYLES, Instruction,
                                        instruction_pool, reflect_prompt, retry_prompt)
from helpers.tasks.registry import build_items
from helpers.widgets import case_browser, filter_cases, render_case

SMOKE = preset(REFLECTION_PRESETS, "smoke")


def test_instruction_pool_has_32_distinct_instructions():
    pool = instruction_pool()
    assert (len(VERIFICATION_STYLES), len(REVIEW_FOCUSES), len(PLAN_LEVELS)) == (2, 8, 2)
    assert len(pool) == 32
    assert len({i.id for i in pool}) == 32 and len({i.text for i in pool}) == 32


def test_instructions_per_failure_are_deterministic_and_distinct():
    first = choose_instructions("task/s0/3", 8, seed=0)
    assert first == choose_instructions("task/s0/3", 8, seed=0)
    assert len({i.id for i in first}) == 8, "instructions should not repeat while the pool lasts"
    assert first != choose_instructions("task/s0/4", 8, seed=0)


def test_prompts_carry_question_trial_instruction_and_reflection():
    instruction = instruction_pool()[5]
    text = reflect_prompt("What is 2+3?", "Thought: 2+3=6\nObservation: Answer is INCORRECT", instruction)[-1]["content"]
    assert "What is 2+3?" in text and "2+3=6" in text and instruction.text in text
    assert "Do not state the answer" in text and "100 words" in text
    retry = retry_prompt("What is 2+3?", "Thought: 2+3=6", "I added the two numbers wrongly.")
    assert retry[-1]["content"].endswith("Now solve the question again.") and "I added the two numbers wrongly." in retry[-1]["content"]
    assert [m["role"] for m in retry] == ["user", "assistant", "user", "assistant", "user"]


def test_empty_generation_is_a_failed_trial_with_raw_text_kept():
    item = build_items(["basic_arithmetic"], 1, 0)[0]
    output = _trial_output(item, "   ", 1, None, None, "m")
    assert output["is_correct"] is False and output["generated_answer"] == ""
    assert output["reasoning"].startswith("Thought:") and "INCORRECT" in output["reasoning"]


def test_shards_are_disjoint_and_cover_the_run():
    cfg = preset(REFLECTION_PRESETS, "smoke", n_questions=10)
    everything = [i.id for i in select_items(cfg)]
    shards = [[i.id for i in select_items(cfg, parse_shard(f"{k}/3"))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(everything) and len(set(sum(shards, []))) == len(everything)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("2of3")
    with pytest.raises(ValueError, match="0 <= i < N"):
        parse_shard("3/3")


def test_pipeline_writes_release_records_and_resumes(tiny_engine, tiny_lm_dir, tmp_path):
    # The tiny random LM fails every first trial, so every question goes through reflect and retry.
    cfg = preset(REFLECTION_PRESETS, "smoke", model=str(tiny_lm_dir))
    engines = Engines(tiny_engine, tiny_engine)
    path = generate(cfg, tmp_path / "run", engines=engines, progress=False)
    records = read_run_records(tmp_path / "run")
    assert len(records) == cfg.n_questions and path.name == "raw.jsonl"
    for record in records:
        assert set(formats.RAW_FIELDS) <= set(record)
        first, retries = record["output"][0], record["output"][1:]
        assert first["trial"] == 1 and first["reflections"] == []
        assert first["reasoning"].endswith(("Answer is CORRECT", "Answer is INCORRECT"))
        assert len(retries) == (0 if first["is_correct"] else cfg.n_reflections)
        for retry in retries:
            assert retry["trial"] == 2 and len(retry["reflections"]) == 1 and retry["instruction"].count("/") == 2
    assert sum(len(r["output"]) > 1 for r in records) >= 6, "the noise model should fail (nearly) every first trial"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["instruction_pool"] and manifest["task_mix"] == list(cfg.tasks)
    assert manifest["generator"]["path"] == str(tiny_lm_dir.resolve())
    before = path.read_text()
    generate(cfg, tmp_path / "run", engines=engines, progress=False)
    assert path.read_text() == before, "a finished run started again must not add or change records"
    with pytest.raises(ValueError, match=r"holds a reflection run made with other settings \(seed differ"):
        generate(dataclasses.replace(cfg, seed=5), tmp_path / "run", engines=engines, progress=False)


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path, tiny_lm_dir):
    out, n = tmp_path / "killed", 12
    command = [sys.executable, "-m", "helpers", "reflect", "generate", "--profile", "smoke", "--model", str(tiny_lm_dir),
               "--n-questions", str(n), "--chunk-size", "2", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = out / "raw.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if raw.exists() and raw.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; use more questions"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    kept = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()]
    assert 2 <= len(kept) < n
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    final = read_run_records(out)
    ids = [r["id"] for r in final]
    assert len(raw.read_text().splitlines()) == n and len(set(ids)) == n, "records lost or duplicated"
    assert final[: len(kept)] == kept, "records written before the kill must stay as they were"
    assert sorted(ids) == sorted(i.id for i in select_items(preset(REFLECTION_PRESETS, "smoke", n_questions=n)))


def _retry(correct: bool, reflection: str) -> dict:
    return {"generated_answer": "4" if correct else "5", "reflections": [reflection],
            "reasoning": f"Thought: ...\nObservation: Answer is {'CORRECT' if correct else 'INCORRECT'}",
            "is_correct": correct, "trial": 2, "instruction": "trace/calculation/high_level"}


HAND_MADE = [
    {"id": "q1", "question": "What is 2+2?", "answer": "4", "output": [
        {"generated_answer": "5", "reflections": [], "reasoning": "Thought: 2+2=5\nObservation: Answer is INCORRECT",
         "is_correct": False, "trial": 1},
        _retry(True, "I added the two numbers wrongly."), _retry(False, "The format of my answer was wrong."), _retry(True, "Count again on my fingers carefully.")]},
    {"id": "q2", "question": "What is 1+1?", "answer": "2", "output": [
        {"generated_answer": "2", "reflections": [], "reasoning": "Thought: 1+1=2\nObservation: Answer is CORRECT",
         "is_correct": True, "trial": 1}]},
]


def test_curation_of_hand_made_records():
    too_short = [dict(HAND_MADE[0], output=HAND_MADE[0]["output"] + [_retry(True, "Question:")])]
    assert len(curation.curate_d_plus(too_short)) == 2, "degenerate short reflections must be left out"
    d_plus = curation.curate_d_plus(HAND_MADE)
    assert [r["reflections"] for r in d_plus] == ["I added the two numbers wrongly.", "Count again on my fingers carefully."]
    assert all(set(r) == set(formats.D_PLUS_FIELDS) for r in d_plus)
    assert len(d_plus[0]["reason_prompt"]) == 2 and "What is 2+2?" in d_plus[0]["reflect_prompt"]
    pairs = curation.curate_d_plus_minus(HAND_MADE)
    assert [(p["reflection_chosen"], p["reflection_rejected"]) for p in pairs] == [
        ("I added the two numbers wrongly.", "The format of my answer was wrong."), ("Count again on my fingers carefully.", "The format of my answer was wrong.")]
    assert all(set(p) == set(formats.PAIR_FIELDS) for p in pairs)


def test_judge_is_order_symmetric_and_ranks_pairs(engine):
    record = HAND_MADE[0]
    forward, backward = curation.judge_pairs(engine, [(record, "I added the two numbers wrongly.", "Blah blah."),
                                                      (record, "Blah blah.", "I added the two numbers wrongly.")])
    assert forward == pytest.approx(-backward, abs=1e-4), "swapping the pair must flip the judge's preference"
    d_pref = curation.curate_d_pref(HAND_MADE, engine)
    assert len(d_pref) == 3 and all(set(formats.PAIR_FIELDS) <= set(r) for r in d_pref)


@pytest.mark.parametrize("name,kind", [("example_Reflection_raw.jsonl", "raw"), ("example_D+.jsonl", "d_plus"),
                                       ("example_D+-.jsonl", "d_plus_minus"), ("example_Dpref.jsonl", "d_pref")])
def test_release_formats_round_trip(shared_data, tmp_path, name, kind):
    records = formats.read_records(shared_data / "reflectevo_formats" / name, kind=kind)
    assert records, f"{name} read as empty"
    copy = formats.write_records(tmp_path / name, records)
    assert formats.read_records(copy, kind=kind) == records
    assert formats.as_dataset(records).num_rows == len(records)


def test_curating_the_release_raw_file_gives_d_plus_records(shared_data):
    records = formats.read_records(shared_data / "reflectevo_formats" / "example_Reflection_raw.jsonl", kind="raw")
    d_plus = curation.curate_d_plus(records)
    assert d_plus, "the release raw example holds corrected failures"
    for record in d_plus:
        assert set(record) == set(formats.D_PLUS_FIELDS) and "CORRECT" in record["second_trial_reasoning"]
        assert record["reflect_prompt"] is None, "release records carry no instruction id"


def test_wrong_kind_of_file_is_named(shared_data):
    with pytest.raises(ValueError, match="lacks .*reflections"):
        formats.read_records(shared_data / "reflectevo_formats" / "example_D+-.jsonl", kind="d_plus")


def test_tasks_file_with_a_malformed_row_is_skipped_with_its_line(tmp_path):
    source = tmp_path / "mine.jsonl"
    source.write_text('{"question": "Q1? A. x B. y", "answer": "A"}\n{broken\n{"question": "Q2?", "answer": "B"}\n')
    cfg = preset(REFLECTION_PRESETS, "smoke", tasks=(), tasks_file=str(source), n_questions=5)
    with pytest.warns(UserWarning, match="line 2"):
        items = select_items(cfg)
    assert [i.answer for i in items] == ["A", "B"]


def test_analysis_tables_on_hand_made_records():
    records = [dict(r, task="arith", domain="math") for r in HAND_MADE]
    table = by_task(records).set_index("task")
    assert table.loc["arith", "questions"] == 2 and table.loc["arith", "trial1_accuracy"] == 0.5
    assert table.loc["arith", "failures_fixed"] == 1.0
    assert table.loc["all", "reflection_success"] == pytest.approx(2 / 3)
    instructions = by_instruction(records)
    assert instructions.loc[0, "instruction"] == "trace/calculation/high_level"
    assert instructions.loc[0, "reflections"] == 3 and instructions.loc[0, "focus"] == "calculation"
    assert list(reflection_lengths(records)["words"]) == [6, 7, 6]
    cases = failure_cases(records)
    assert len(cases) == 3 and [c["fixed"] for c in cases] == [True, False, True]
    assert len(filter_cases(cases, "arith", "not fixed")) == 1 and filter_cases(cases, "other") == []
    page = render_case(dict(cases[1], question="Is 1 < 2 & 3 > 2?"))
    assert "The format of my answer was wrong." in page and "&lt; 2 &amp; 3" in page and "INCORRECT" in page
    assert case_browser(cases).children, "the browser widget should build"


# --- issue 14: prompts stored with curated records, pairs under one prompt, sampling streams -----

def _structure(prompt):
    """``str`` or ``[str, str]``: how a curated file lays out its reason_prompt."""
    return [type(part).__name__ for part in prompt] if isinstance(prompt, list) else type(prompt).__name__


def test_curated_reason_prompts_are_each_records_full_trial_prompts_as_in_the_release(shared_data, tiny_engine):
    folder = shared_data / "reflectevo_formats"
    raw = formats.read_records(folder / "example_Reflection_raw.jsonl", kind="raw")
    curated = {"example_D+.jsonl": curation.curate_d_plus(raw), "example_D+-.jsonl": curation.curate_d_plus_minus(raw),
               "example_Dpref.jsonl": curation.curate_d_pref(raw, tiny_engine)}
    for name, ours in curated.items():
        release = formats.read_records(folder / name)
        expected = {_structure(r["reason_prompt"]) if isinstance(r["reason_prompt"], str)
                    else tuple(_structure(r["reason_prompt"])) for r in release}
        assert len(expected) == 1 and ours, f"{name}: one layout in the release, and curated records to compare"
        for release_record in release:  # the property holds in the release itself
            prompts = release_record["reason_prompt"]
            assert release_record["question"] in (prompts if isinstance(prompts, str) else prompts[0])
        for record in ours:
            layout = _structure(record["reason_prompt"])
            assert (layout if isinstance(layout, str) else tuple(layout)) in expected, \
                f"{name}: reason_prompt laid out as {layout}, the release as {expected}"
            prompts = [record["reason_prompt"]] if isinstance(record["reason_prompt"], str) else record["reason_prompt"]
            for prompt in prompts:
                assert record["question"] in prompt, f"{name}: the reason prompt must hold the record's own question, " \
                                                      f"not only the worked examples: {prompt[:120]!r}"
    for record in curated["example_D+.jsonl"]:
        trial2 = record["reason_prompt"][1]
        assert record["reflections"].strip() in trial2 and record["first_trial_reasoning"].strip() in trial2, \
            "the trial-2 prompt holds the failed trial and the reflection the second trial was written after"
    questions = {r["question"] for r in curated["example_D+.jsonl"]}
    assert len({r["reason_prompt"][0] for r in curated["example_D+.jsonl"]}) == len(questions)


def _trial(answer, correct, reflection=None, instruction=None):
    output = {"generated_answer": answer, "reflections": [reflection] if reflection else [], "trial": 2 if reflection else 1,
              "reasoning": f"Thought: it is {answer}.\nAction: Finish[{answer}]\n"
                           f"Observation: Answer is {'CORRECT' if correct else 'INCORRECT'}", "is_correct": correct}
    return {**output, "instruction": instruction} if instruction else output


TRACE, REVIEW = "trace/calculation/high_level", "review/context/low_level"
TWO_INSTRUCTIONS = [{"id": "q1", "question": "What is 6*7?", "answer": "42", "output": [
    _trial("48", False),
    _trial("42", True, "I multiplied 6 by 8 instead of 7; recompute the product.", TRACE),
    _trial("36", False, "I mixed up the factors and subtracted; check each factor.", TRACE),
    _trial("42", True, "I misread the question as 6 times 8; read it again slowly.", REVIEW)]}]


def test_preference_pairs_hold_two_reflections_written_under_the_pairs_prompt(tiny_engine):
    written_under = {o["reflections"][0]: o["instruction"] for o in TWO_INSTRUCTIONS[0]["output"][1:]}
    pairs = curation.curate_d_plus_minus(TWO_INSTRUCTIONS)
    prefs = curation.curate_d_pref(TWO_INSTRUCTIONS, tiny_engine, max_pairs=10)
    assert len(pairs) == 1, "only the TRACE reflections form a (correct, wrong) pair under one instruction"
    assert len(prefs) == 1, "only the two TRACE reflections were written under the same instruction"
    record = TWO_INSTRUCTIONS[0]
    for pair in pairs + prefs:
        instruction = written_under[pair["reflection_chosen"]]
        assert written_under[pair["reflection_rejected"]] == instruction, \
            "DPO compares two completions of one prompt: the rejected reflection was written under another instruction"
        expected = reflect_prompt(record["question"], record["output"][0]["reasoning"], Instruction(*instruction.split("/")))
        assert pair["reflection_prompt"] == expected[0]["content"]


def test_instructions_repeat_so_that_reflections_can_be_paired():
    assert choose_instructions("q", 3, seed=0) == choose_instructions("q", 3, seed=0, per_instruction=1)
    twice = choose_instructions("q", 5, seed=0, per_instruction=2)
    assert twice[0] == twice[1] and twice[2] == twice[3] and len({i.id for i in twice}) == 3
    assert twice[0] == choose_instructions("q", 1, seed=0)[0], "the first instruction is the one evaluation uses"
    assert SMOKE.reflections_per_instruction >= 2, "without repeated instructions D+- and Dpref stay empty"


def test_chunks_sample_reflections_from_streams_of_their_own(recording_tiny_engine, tmp_path):
    cfg = preset(REFLECTION_PRESETS, "smoke", n_questions=8, chunk_size=4)
    recording = recording_tiny_engine
    generate(cfg, tmp_path / "run", engines=Engines(recording, recording), progress=False)
    seeds = [params.seed for _, params in recording.calls if params.temperature > 0]
    assert len(seeds) == 2 and seeds[0] != seeds[1], f"two chunks sampled with seeds {seeds}: they share a random stream"
    records = read_run_records(tmp_path / "run")
    for record in records:
        retries = record["output"][1:]
        if not retries:  # the noise model answered right by chance
            continue
        per = cfg.reflections_per_instruction
        groups = [retries[i:i + per] for i in range(0, len(retries), per)]
        assert len(retries) == cfg.n_reflections and len(groups) == cfg.n_reflections // per
        for group in groups:
            assert {r["instruction"] for r in group} == {group[0]["instruction"]}, "one instruction per group"
            assert len({r["reflections"][0] for r in group}) == per, "samples of one prompt must differ"
    recording.calls.clear()
    generate(cfg, tmp_path / "again", engines=Engines(recording, recording), progress=False)
    assert [p.seed for _, p in recording.calls if p.temperature > 0] == seeds, "a chunk redone must get the same stream"
    assert read_run_records(tmp_path / "again") == records


def test_dpref_pairs_per_question_default_to_the_configuration():
    from helpers.cli import build_parser

    configured = preset(REFLECTION_PRESETS, "default").pref_pairs_per_question
    assert build_parser().parse_args(["reflect", "curate", "--run", "x"]).pref_pairs_per_question is None, \
        "the CLI leaves the default to the run's recorded configuration"
    assert inspect.signature(curation.write_curated).parameters["pref_pairs_per_question"].default == configured, \
        "notebook 01, the CLI and write_curated's callers must curate the same Dpref set"
