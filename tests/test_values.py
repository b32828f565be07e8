"""helpers.values: inventories, the split, roles, answer parsing and scoring (hand-made answers and
the real embedded LM)."""

import io
import math

import numpy as np
import pandas as pd
import pytest

from helpers.config import ENV_CACHE_DIR
from helpers.generation import Completion, ContinuationScore
from helpers.values import inventory
from helpers.values.inventory import (PAPER_VALUES, embedded_inventory, like_me_scale, load_valuebench, select_items,
                                      split_items, validate_inventory)
from helpers.values.roles import NO_ROLE, NO_SETTING, Persona, ValueSetting, cross, generate_roles, value_settings
from helpers.values.scoring import (build_prompt, option_logprobs, parse_yes_no, score_personas, scores_table)
from helpers.studies.value_graph import VALUE_GRAPH_PRESETS, study_items, study_personas


def test_embedded_inventory_has_ten_values_with_signed_items():
    items = embedded_inventory()
    counts = items.groupby("value").size()
    assert len(counts) == 10 and counts.min() >= 6
    signs = items.groupby("value")["agreement"].agg(set)
    assert all(s == {1, -1} for s in signs), "every value needs agreeing and reverse-keyed items"
    assert items["item"].str.contains(r"\b(?:I|me|my)\b").all(), "items must be first-person statements"
    assert items["question"].str.endswith("?").all() and not items["item"].duplicated().any()
    assert like_me_scale()[0] == "Not like me at all" and len(like_me_scale()) == 6


def test_inventory_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="lacks column"):
        validate_inventory(pd.DataFrame({"item": ["x"]}))
    bad = embedded_inventory().head(3).assign(agreement=[1, 0, -1])
    with pytest.raises(ValueError, match="agreement must be 1 or -1"):
        validate_inventory(bad)
    with pytest.raises(ValueError, match="Unknown value"):
        embedded_inventory(["Power", "Kindness"])
    with pytest.raises(FileNotFoundError, match="value_orientation.csv"):
        load_valuebench("/nonexistent/value_orientation.csv")


def test_valuebench_from_the_reference_file(shared_data):
    items = load_valuebench(shared_data / "valuebench" / "value_orientation.csv")
    assert len(items) == 1988 and items["value"].nunique() == 224
    paper = select_items(items, values=PAPER_VALUES)
    assert set(paper["value"]) == set(PAPER_VALUES) and paper.groupby("value").size().min() >= 20
    nfcc = load_valuebench(shared_data / "valuebench" / "value_orientation.csv", questionnaires=["NFCC2000"])
    assert set(nfcc["questionnaire"]) == {"NFCC2000"} and len(nfcc) > 0


def test_valuebench_from_a_url_downloads_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    csv_text = embedded_inventory().head(6).to_csv(index=False)
    calls = []

    def fake_urlopen(url, timeout):  # the network is what cannot run here; the rest is real
        calls.append(url)
        return io.BytesIO(csv_text.encode())

    monkeypatch.setattr(inventory.urllib.request, "urlopen", fake_urlopen)
    first = load_valuebench("https://example.org/data/value_orientation.csv")
    second = load_valuebench("https://example.org/data/value_orientation.csv")
    assert len(calls) == 1 and len(first) == 6
    pd.testing.assert_frame_equal(first, second)
    assert len(list((tmp_path / "cache" / "inventories").glob("*-value_orientation.csv"))) == 1


def test_split_is_seventy_thirty_per_value_disjoint_and_seeded():
    items = embedded_inventory()
    train, test = split_items(items, 0.7, seed=1)
    assert (train.groupby("value").size() == 6).all() and (test.groupby("value").size() == 2).all()
    assert not set(train["item"]) & set(test["item"]) and len(train) + len(test) == len(items)
    again, _ = split_items(items, 0.7, seed=1)
    other, _ = split_items(items, 0.7, seed=2)
    assert list(again["item"]) == list(train["item"]) and list(other["item"]) != list(train["item"])
    with pytest.raises(ValueError, match="train_fraction"):
        split_items(items, 1.0)


def test_roles_are_seeded_distinct_and_complete():
    roles = generate_roles(40, seed=7, with_bio=True)
    assert roles == generate_roles(40, seed=7, with_bio=True), "same seed must give the same roles"
    assert roles != generate_roles(40, seed=8, with_bio=True)
    assert len({r.name for r in roles}) == 40
    role = roles[0]
    assert role.gender in ("female", "male") and len(role.mbti) == 4 and role.job
    assert role.name in role.bio and role.mbti in role.trait()
    assert generate_roles(3, seed=7)[0].bio == "" and generate_roles(3, seed=7)[0].name == role.name
    with pytest.raises(ValueError, match="n must lie"):
        generate_roles(10**6)


def test_personas_baseline_and_value_settings():
    assert Persona().system_prompt() == ""
    settings = value_settings(["Power", "Tradition"])
    assert [s.label for s in settings] == ["+Power", "-Power", "+Tradition", "-Tradition"]
    plus = Persona(NO_ROLE, settings[0]).system_prompt()
    minus = Persona(NO_ROLE, settings[1]).system_prompt()
    assert "Power" in plus and "care deeply" in plus and "reject" in minus and "status" in plus
    role = generate_roles(1)[0]
    assert Persona(role, NO_SETTING).system_prompt().startswith("Here is your trait: Name: ")
    assert len(cross(generate_roles(3), [NO_SETTING, *settings])) == 15
    with pytest.raises(ValueError, match="direction"):
        ValueSetting("Power", 0)


def test_a_setting_label_decodes_back_to_its_setting():
    for setting in [NO_SETTING, *value_settings(["Power", "Self-Direction", "Universalism"])]:
        assert ValueSetting.from_label(setting.label) == setting, f"{setting.label!r} must decode to {setting}"
    assert ValueSetting.from_label("-Self-Direction") == ValueSetting("Self-Direction", -1), \
        "only the first character is the sign; a hyphen inside the value name belongs to the name"
    for bad in ("", "+", "Power", "f369@200", "*Power"):
        with pytest.raises(ValueError, match="Not a value-setting label"):
            ValueSetting.from_label(bad)


@pytest.mark.parametrize("text, answer", [
    ("Thought: Freedom matters to me. Answer: yes", "yes"),
    ("Thought: I prefer rules. Answer: No.", "no"),
    ("Thought: yes, but no. Answer: **no**", "no"),
    ("No, I would not.", "no"),
    ("Yes!", "yes"),
    ("I think so, maybe.", "unclear"),
    ("Yes and no.", "unclear"),
    ("I know nothing about noses", "unclear"),
])
def test_parse_yes_no_on_hand_made_answers(text, answer):
    assert parse_yes_no(text) == answer


class HandMadeEngine:
    """Answers fixed in advance, for checking the arithmetic of the scores (no model behind it)."""

    tokenizer = None

    def __init__(self, texts=(), p_yes=0.8):
        self.texts, self.p_yes = list(texts), p_yes

    def generate(self, prompts, params, progress=True):
        return [[Completion(self.texts[i % len(self.texts)], 5, "stop")] for i in range(len(prompts))]

    def logprobs(self, prompts, continuations):
        p = {" Yes": self.p_yes, " No": 1 - self.p_yes}
        return [ContinuationScore(total=math.log(p.get(c, 1e-9))) for c in continuations]


class _Tok:
    chat_template = "x"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "|".join(m["content"] for m in messages) + "|assistant|"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1, 2]}  # two tokens: forces the continuation path


def test_generate_scoring_counts_yes_no_and_unclear():
    items = embedded_inventory(["Power"]).iloc[[0, 6]]  # agreement +1, then -1
    engine = HandMadeEngine(["Thought: sure. Answer: yes", "Thought: hmm, hard to say."])
    answers = score_personas(engine, [Persona()], items, method="generate")
    assert list(answers["answer"]) == ["yes", "unclear"] and list(answers["item_score"]) == [1.0, 0.0]
    assert answers["raw_text"].iloc[1] == "Thought: hmm, hard to say."
    table = scores_table(answers)
    assert table.loc[0, "Power"] == 0.5 and table.loc[0, "n_unclear"] == 1
    engine = HandMadeEngine(["Answer: no"])
    assert list(score_personas(engine, [Persona()], items, method="generate")["item_score"]) == [-1.0, 1.0]


def test_logprob_scoring_arithmetic_on_hand_made_probabilities():
    items = embedded_inventory(["Power"]).iloc[[0, 6]]
    engine = HandMadeEngine(p_yes=0.8)
    engine.tokenizer = _Tok()
    answers = score_personas(engine, [Persona(), Persona(generate_roles(1)[0])], items, method="logprob_yes_no")
    assert answers["p_yes"].to_numpy() == pytest.approx([0.8] * 4)
    assert answers["item_score"].to_numpy() == pytest.approx([0.6, -0.6, 0.6, -0.6])
    table = scores_table(answers)
    assert list(table["setting"]) == ["none", "none"] and table["Power"].to_numpy() == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match="choose one of"):
        score_personas(engine, [Persona()], items, method="ask_nicely")


def test_centering_removes_a_personas_overall_yes_lean():
    # One persona says yes to everything (lean +1): uncentred, the agreeing item scores +1 and the
    # reverse-keyed one -1; centred, both answers equal the persona's mean, so both score 0.
    answers = pd.DataFrame({"role": ["r"] * 3, "setting": ["none"] * 3, "value": ["A", "A", "B"],
                            "agreement": [1, -1, 1], "item_score": [1.0, -1.0, 0.2]})
    # unsigned answers: 1, 1, 0.2 -> mean 0.7333; centred A items: 0.2667 and -0.2667, B: -0.5333
    centred = scores_table(answers, center=True)
    assert centred.loc[0, "A"] == pytest.approx(0.0) and centred.loc[0, "B"] == pytest.approx(0.2 - 2.2 / 3)
    assert scores_table(answers).loc[0, "B"] == pytest.approx(0.2)


def test_one_pass_option_scores_match_continuation_scores_on_the_real_lm(engine):
    items = embedded_inventory(["Benevolence"]).head(3)
    prompts = [build_prompt(Persona(), item, "logprob_yes_no", engine.tokenizer) for _, item in items.iterrows()]
    fast = option_logprobs(engine, prompts, [" Yes", " No"], batch_size=2)
    slow = np.array([[s.total for s in engine.logprobs([p, p], [" Yes", " No"])] for p in prompts])
    assert fast == pytest.approx(slow, abs=1e-3), "the one-pass scorer disagrees with engine.logprobs"
    one_by_one = option_logprobs(engine, prompts, [" Yes", " No"], batch_size=1)
    assert fast == pytest.approx(one_by_one, abs=1e-3), "scores depend on the batch (padding or positions)"


def test_scoring_on_the_real_lm_both_ways(engine):
    items = embedded_inventory(["Power", "Universalism"]).groupby("value").head(2)
    personas = [Persona(), Persona(generate_roles(1, seed=3)[0]), Persona(NO_ROLE, ValueSetting("Power", 1))]
    yes_no = score_personas(engine, personas, items, method="logprob_yes_no")
    assert yes_no["option_mass"].min() > 0.2, "the yes/no options should hold much of the next-token mass"
    assert yes_no["item_score"].between(-1, 1).all()
    table = scores_table(yes_no)
    assert list(table.columns) == ["role", "setting", "Power", "Universalism"] and len(table) == 3
    assert table[["Power", "Universalism"]].std().min() > 0, "scores do not vary across personas at all"
    like_me = score_personas(engine, personas[:1], items, method="logprob_like_me")
    assert like_me["expected_rating"].between(1, 6).all() and like_me["option_mass"].min() > 0.2
    generated = score_personas(engine, personas[:1], items.head(2), method="generate", max_new_tokens=24)
    assert generated["raw_text"].str.len().min() > 0 and set(generated["answer"]) <= {"yes", "no", "unclear"}
    assert "n_unclear" in scores_table(generated)


def test_study_presets_give_enough_rows_for_discovery():
    for profile, cfg in VALUE_GRAPH_PRESETS.items():
        if profile == "paper":
            continue
        train, test = study_items(cfg)
        discovery, steering = study_personas(cfg, values=sorted(train["value"].unique()))
        assert len(discovery) >= train["value"].nunique() + 5, f"{profile}: too few rows for PC"
        assert not {p.role.name for p in discovery[1:]} & {p.role.name for p in steering[1:]}
    assert len(study_personas(VALUE_GRAPH_PRESETS["default"])[0]) >= 61
