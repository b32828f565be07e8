"""Training throughput of each reflection recipe (trl + peft) against a plain transformers.Trainer
+ peft baseline on the same rows: samples/s, tokens/s and peak memory. Reports, never asserts.

    python bench/bench_training.py [--steps 4] [--batch-size 4] [--run DIR]

Each measurement runs in its own process (so peak RSS belongs to it alone) on the embedded LM with
LoRA, the recipe's settings on this machine (bf16 autocast, no gradient checkpointing on CPU),
``--steps`` optimizer steps of ``--batch-size`` rows. The baseline trains the one-stage SFT rows
with a hand-rolled completion-only collator: prompt tokens masked with -100, the same LoRA config.
Tokens count every token the model reads (prompt and completion; chosen and rejected for DPO).
Rows come from notebook 01's run (``--run``, default: the default profile's run folder).
Writes ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from helpers.artifacts import atomic_write_json, package_versions

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"
CASES = ("plain_trainer_peft", "sft_qa", "sft_one_stage", "sft_two_stage", "dpo")


def _rows(case: str, run: Path, n: int) -> tuple[object, list[dict]]:
    from helpers.config import configs_dir
    from helpers.training import load_recipe, training_sets

    recipe_name = "sft_one_stage" if case == "plain_trainer_peft" else case
    recipe = load_recipe(configs_dir() / f"{recipe_name}.yaml", "/tmp/bench-training")
    return recipe, training_sets(recipe, run)[0][1][:n]


def _token_count(tokenizer, rows: list[dict]) -> int:
    total = 0
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        answers = [row["completion"]] if "completion" in row else [row["chosen"], row["rejected"]]
        total += sum(len(tokenizer(prompt + a[0]["content"])["input_ids"]) for a in answers)
    return total


def _plain_trainer(recipe, rows, tokenizer, model, args):
    """transformers.Trainer + peft, completion-only labels built by hand."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    def encode(row):
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt)["input_ids"]
        full = tokenizer(prompt + row["completion"][0]["content"] + tokenizer.eos_token)["input_ids"]
        return {"input_ids": full, "attention_mask": [1] * len(full),
                "labels": [-100] * len(prompt_ids) + full[len(prompt_ids):]}

    margs = recipe.model_args
    lora = LoraConfig(r=margs.lora_r, lora_alpha=margs.lora_alpha, lora_dropout=margs.lora_dropout,
                      target_modules=margs.lora_target_modules, task_type="CAUSAL_LM")
    data = Dataset.from_list([encode(r) for r in rows])
    training_args = TrainingArguments(output_dir="/tmp/bench-training/plain", max_steps=args.steps,
                                      per_device_train_batch_size=args.batch_size, learning_rate=2e-4,
                                      bf16=True, use_cpu=True, report_to="none", save_strategy="no",
                                      logging_steps=1)
    return Trainer(model=get_peft_model(model, lora), args=training_args, train_dataset=data,
                   data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True))


def measure(case: str, args) -> dict:
    """One case in this process: build the trainer, time ``args.steps`` steps."""
    import dataclasses

    from datasets import Dataset
    from trl import DPOTrainer, SFTTrainer, get_peft_config

    from helpers.models import load_lm

    recipe, rows = _rows(case, Path(args.run), args.steps * args.batch_size)
    model, tokenizer = load_lm(dtype="float32")
    if recipe.trainer == "sft":
        tokenizer.padding_side = "right"
    if case == "plain_trainer_peft":
        trainer = _plain_trainer(recipe, rows, tokenizer, model, args)
    else:
        training_args = dataclasses.replace(recipe.training_args, max_steps=args.steps,
                                            per_device_train_batch_size=args.batch_size, logging_steps=1)
        trainer_cls = SFTTrainer if recipe.trainer == "sft" else DPOTrainer
        trainer = trainer_cls(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, peft_config=get_peft_config(recipe.model_args))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    samples = args.steps * args.batch_size
    tokens = _token_count(tokenizer, rows[:samples])
    return {"case": case, "steps": args.steps, "batch_size": args.batch_size, "samples": samples,
            "tokens": tokens, "seconds": round(seconds, 2), "samples_per_s": round(samples / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    from helpers.config import data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--run", default=str(data_dir() / "01_reflection" / "default"))
    parser.add_argument("--case", choices=CASES, help="(internal) measure one case and print it as JSON")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args)))
        return
    rows = []
    for case in CASES:
        command = [sys.executable, __file__, "--case", case, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--run", args.run]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{case:20s} {r['samples_per_s']:6.3f} samples/s {r['tokens_per_s']:7.1f} tokens/s "
              f"peak {r['peak_rss_mb']} MB", flush=True)
    baseline = rows[0]["tokens_per_s"]
    for r in rows:
        r["tokens_per_s_vs_plain"] = round(r["tokens_per_s"] / baseline, 2)
    print("tokens/s relative to plain Trainer + peft:",
          ", ".join(f"{r['case']} {r['tokens_per_s_vs_plain']:.2f}x" for r in rows[1:]))
    atomic_write_json(RESULTS, {"rows": rows, "run": args.run, "packages": package_versions(
        ["torch", "transformers", "trl", "peft"])})


if __name__ == "__main__":
    main()
