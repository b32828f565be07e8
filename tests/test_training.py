"""Each recipe trains a few steps on a tiny real dataset with the embedded LM: the loss falls, and
the adapter and the merged model load back through helpers.models.load_lm."""

import json

import pytest
import torch
import yaml

from helpers.artifacts import atomic_write_jsonl
from helpers.config import configs_dir
from helpers.models import load_lm
from helpers.reflection.curation import curate_d_plus, curate_d_plus_minus
from helpers.training import RECIPES, load_recipe, train

QUESTIONS = [("What is 2+2?", "4", "5"), ("What is 3+5?", "8", "9"), ("What is 6-1?", "5", "4"),
             ("What is 7+2?", "9", "8")]


def _trial(text: str, correct: bool) -> str:
    return f"Thought: {text}\nAction: Finish[...]\nObservation: Answer is {'CORRECT' if correct else 'INCORRECT'}"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A generation run in miniature: raw records and the curated files made from them."""
    folder = tmp_path_factory.mktemp("run")
    raw = []
    for n, (question, gold, wrong) in enumerate(QUESTIONS):
        retry = {"generated_answer": gold, "is_correct": True, "trial": 2, "instruction": "trace/calculation/low_level",
                 "reflections": [f"I added wrongly and wrote {wrong}. Recompute the sum carefully."],
                 "reasoning": _trial(f"Recomputing, the answer is {gold}.", True)}
        bad = {**retry, "generated_answer": wrong, "is_correct": False, "reflections": ["The question is unclear to me, so guess again."],
               "reasoning": _trial(f"It is {wrong}.", False)}
        raw.append({"id": f"q{n}", "question": question, "answer": gold, "task": "arith", "domain": "math",
                    "output": [{"generated_answer": wrong, "reflections": [], "is_correct": False, "trial": 1,
                                "reasoning": _trial(f"It is {wrong}.", False)}, retry, bad]})
    atomic_write_jsonl(folder / "raw.jsonl", raw)
    atomic_write_jsonl(folder / "d_plus.jsonl", curate_d_plus(raw))
    atomic_write_jsonl(folder / "d_plus_minus.jsonl", curate_d_plus_minus(raw))
    return folder


def test_every_recipe_yaml_parses_into_trl_configs(tmp_path):
    for name in RECIPES:
        recipe = load_recipe(configs_dir() / f"{name}.yaml", tmp_path)
        assert recipe.name == name and recipe.model_args.use_peft
        assert recipe.training_args.learning_rate > 0 and recipe.training_args.report_to in ([], "none", ["none"])


def test_unknown_recipe_keys_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"recipe": "sft_qa", "lerning_rate": 1e-4}))
    with pytest.raises(ValueError, match="lerning_rate"):
        load_recipe(path, tmp_path)


@pytest.mark.parametrize("name,extra", [("sft_qa", {}), ("sft_one_stage", {}), ("sft_two_stage", {}),
                                        ("dpo", {"data": "d_plus_minus"})])
def test_recipe_trains_and_the_loss_falls(run_folder, tmp_path, name, extra):
    result = train(configs_dir() / f"{name}.yaml", run_folder, tmp_path / name, max_steps=6, learning_rate=2e-3,
                   per_device_train_batch_size=2, logging_steps=1, lr_scheduler_type="constant", warmup_steps=0,
                   **extra)
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    stages = sorted({e["stage"] for e in result.log_history})
    assert stages == (["correction", "reflection"] if name == "sft_two_stage" else [next(iter(result.train_rows))])
    first_stage = [e["loss"] for e in result.log_history if "loss" in e and e["stage"] == result.log_history[0]["stage"]]
    assert first_stage[-1] < first_stage[0], f"{name}: loss did not fall: {first_stage}"
    assert len(result.adapter_dirs) == len(stages) and all((d / "adapter_config.json").exists() for d in result.adapter_dirs)
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["train_rows"] == result.train_rows and manifest["base_model"]["gguf_sha256"]
    assert losses


def test_adapter_and_merged_model_load_through_load_lm(run_folder, tmp_path):
    result = train(configs_dir() / "sft_one_stage.yaml", run_folder, tmp_path / "m", max_steps=2,
                   per_device_train_batch_size=2)
    merged, tokenizer = load_lm(str(result.merged_dir))
    adapted, _ = load_lm(str(result.adapter_dirs[0]))
    ids = torch.tensor([tokenizer("What is 2+2?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-3), \
            "base + adapter must compute what the merged model computes"


def test_training_rows_use_the_reflection_prompt_the_reflector_saw(run_folder):
    from helpers.reflection.formats import read_records
    from helpers.training import one_stage_rows, preference_rows

    d_plus = read_records(run_folder / "d_plus.jsonl")
    rows = one_stage_rows(d_plus)
    assert rows[0]["prompt"] == [{"role": "user", "content": d_plus[0]["reflect_prompt"]}]
    assert "Finish" in rows[0]["completion"][0]["content"] and "Observation" not in rows[0]["completion"][0]["content"]
    pairs = read_records(run_folder / "d_plus_minus.jsonl")
    assert preference_rows(pairs)[0]["prompt"][0]["content"] == pairs[0]["reflection_prompt"]
    release_like = [dict(d_plus[0], reflect_prompt=None)]
    assert "Trace the failed solution" in one_stage_rows(release_like)[0]["prompt"][-1]["content"]


def test_a_recipe_runs_under_accelerate_launch(run_folder, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(configs_dir() / "accelerate" / "single_process.yaml"),
               "-m", "helpers", "reflect", "train", "--recipe", str(configs_dir() / "sft_one_stage.yaml"),
               "--data", str(run_folder), "--out", str(tmp_path / "launched"), "--max-steps", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"accelerate launch failed:\n{done.stderr[-2000:]}"
    assert (tmp_path / "launched" / "merged" / "config.json").exists()


@pytest.mark.parametrize("name", ["sft_qa", "sft_one_stage", "sft_two_stage", "dpo"])
def test_every_recipe_trains_in_two_processes_and_one_model_is_written(run_folder, tmp_path, tiny_lm_dir, name):
    """`accelerate launch --num_processes 2 --cpu` (gloo): both ranks train, only rank 0 writes, and
    the folder ends with one adapter per stage, one merged model and nothing half-written."""
    import subprocess
    import sys
    from pathlib import Path

    from helpers.models import load_lm

    out = tmp_path / name
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--num_processes", "2", "--cpu", "--mixed_precision", "no",
               "-m", "helpers", "reflect", "train", "--recipe", str(configs_dir() / f"{name}.yaml"),
               "--data", str(run_folder), "--model", str(tiny_lm_dir), "--out", str(out), "--max-steps", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"two-process training of {name} failed:\n{done.stderr[-3000:]}"
    stages = ["correction", "reflection"] if name == "sft_two_stage" else [None]
    adapters = sorted(p.name for p in out.glob("adapter-*"))
    assert len(adapters) == len(stages), f"{name}: adapters {adapters}"
    assert (out / "merged" / "config.json").is_file() and (out / "manifest.json").is_file()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"
                 or p.suffix in (".tmp", ".saving")]
    assert not leftovers, f"{name}: half-written files left behind: {leftovers}"
    model, _ = load_lm(str(out / "merged"))
    assert model.config.hidden_size == 32, "the merged model is the tiny base model with the adapter merged in"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rule")
def test_recipes_train_in_fp32_on_a_cpu_without_bf16_arithmetic_and_in_bf16_with_it(tmp_path, monkeypatch):
    import helpers.training as training

    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    assert load_recipe(configs_dir() / "sft_qa.yaml", tmp_path).training_args.bf16 is False, \
        "emulated bf16 autocast trained 10x slower than fp32 here"
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    assert load_recipe(configs_dir() / "sft_qa.yaml", tmp_path).training_args.bf16 is True
