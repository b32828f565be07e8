"""Real runs killed and resumed: `reflect generate`, `steer train-sae` and `reflect train` are
started as processes, killed with SIGKILL at chosen points (20 in all, torn writes made by
truncation among them), started again, and compared with an uninterrupted run of the same command.

Every process gets the same thread count, so that the arithmetic (and greedy decoding) is the same
in the killed, the resumed and the uninterrupted runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.artifacts import atomic_write_jsonl, read_jsonl
from helpers.reflection.curation import curate_d_plus

pytestmark = pytest.mark.resume

# Every run here uses the tiny randomly initialised LM (conftest's ``tiny_lm_dir``): resuming to the
# same records and bit-identical weights does not depend on what the model knows, and it runs in seconds.


def generate_args(model: Path) -> list[str]:
    return ["reflect", "generate", "--profile", "smoke", "--model", str(model), "--tasks", "basic_arithmetic,syllogism_mc",
            "--n-questions", "6", "--chunk-size", "1", "--seed", "3"]


def train_sae_args(model: Path) -> list[str]:
    return ["steer", "train-sae", "--model", str(model), "--layer", "0", "--tokens", "12000",
            "--heldout-tokens", "500", "--width", "512", "--k", "16", "--epochs", "8"]


def _env() -> dict[str, str]:
    return {**os.environ, "SLM_NOTEBOOKS_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _command(args: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "helpers", *args, "--out", str(out)]


def run_to_end(args: list[str], out: Path) -> None:
    done = subprocess.run(_command(args, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def kill_when(args: list[str], out: Path, condition, what: str) -> None:
    """Start the command and SIGKILL it as soon as ``condition()`` holds (polled every 20 ms).

    The child's stderr goes to a file, not a pipe: progress bars fill a pipe nobody reads while we
    poll, and a child blocked on a full pipe never reaches the kill point.
    """
    log = out.parent / f"{out.name}.stderr"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(_command(args, out), env=_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 900
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if condition():
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    pytest.fail(f"the run ended (exit {process.returncode}) before it could be killed {what}: "
                f"{log.read_text(errors='replace')[-1500:]}")


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


# --- reflect generate: 9 kill points -------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted_generation(tmp_path_factory, tiny_lm_dir) -> list[dict]:
    out = tmp_path_factory.mktemp("gen-whole")
    run_to_end(generate_args(tiny_lm_dir), out)
    return list(read_jsonl(out / "raw.jsonl"))


def _assert_same_records(path: Path, expected: list[dict]) -> None:
    """Every question once, and the same greedy first trial. (Sampled reflections are not compared:
    the engine's KV cache, reused across calls within a process, can shift floating-point sums by
    an ulp, so a chunk sampled first in a resumed process can draw other tokens than the same chunk
    sampled third in an uninterrupted one.)"""
    records = list(read_jsonl(path))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"duplicate records after resuming: {ids}"
    assert sorted(ids) == sorted(r["id"] for r in expected), "the resumed run lost or added questions"
    by_id = {r["id"]: r for r in records}
    for record in expected:
        got = by_id[record["id"]]
        assert got["output"][0] == record["output"][0], f"trial 1 of {record['id']} differs from the uninterrupted run's"
        assert len(got["output"]) == len(record["output"]), f"{record['id']}: another number of reflections"


def test_generation_killed_at_six_points_resumes_to_the_same_records(tmp_path, uninterrupted_generation, tiny_lm_dir):
    out, raw, args = tmp_path / "gen", tmp_path / "gen" / "raw.jsonl", generate_args(tiny_lm_dir)
    kill_when(args, out, lambda: (out / "manifest.json").is_file(), "while the model loads")
    for written in range(1, 6):  # after 1, 2, ... 5 of the 6 questions
        kill_when(args, out, lambda n=written: _lines(raw) >= n, f"after {written} records")
    run_to_end(args, out)
    _assert_same_records(raw, uninterrupted_generation)


@pytest.mark.parametrize("keep", [0.5, 0.02, 0.98], ids=["half", "first-bytes", "all-but-newline"])
def test_generation_after_a_torn_last_line_redoes_that_record(tmp_path, uninterrupted_generation, keep, tiny_lm_dir):
    out, raw, args = tmp_path / "gen", tmp_path / "gen" / "raw.jsonl", generate_args(tiny_lm_dir)
    kill_when(args, out, lambda: _lines(raw) >= 3, "after 3 records")
    data = raw.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn = data[:last_start + int((len(data) - last_start) * keep)]
    raw.write_bytes(torn.rstrip(b"\n"))  # a write cut short: no closing newline
    run_to_end(args, out)
    _assert_same_records(raw, uninterrupted_generation)


# --- steer train-sae: 6 kill points --------------------------------------------------------------

def _checkpoints(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    return sorted((p for p in folder.glob("*") if p.name.isdigit()), key=lambda p: int(p.name)) if folder.is_dir() else []


@pytest.fixture(scope="module")
def uninterrupted_sae(tmp_path_factory, tiny_lm_dir) -> Path:
    out = tmp_path_factory.mktemp("sae-whole")
    run_to_end(train_sae_args(tiny_lm_dir), out)
    return out


def _assert_same_sae(out: Path, expected: Path) -> None:
    got, want = load_file(out / "sae_weights.safetensors"), load_file(expected / "sae_weights.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs from the uninterrupted run (bit for bit)"


def test_sae_training_killed_at_four_points_resumes_to_bit_identical_weights(tmp_path, uninterrupted_sae, tiny_lm_dir):
    out, sae_args = tmp_path / "sae", train_sae_args(tiny_lm_dir)
    kill_when(sae_args, out, lambda: (out / "training_settings.json").is_file() or
              (out / "corpus.json").is_file(), "while collecting activations")
    for count in (1, 2, 3):
        kill_when(sae_args, out, lambda n=count: len(_checkpoints(out)) >= n, f"after checkpoint {count}")
    run_to_end(sae_args, out)
    _assert_same_sae(out, uninterrupted_sae)
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize("damaged", ["trainer_state.pt", "sae_weights.safetensors"])
def test_a_damaged_sae_checkpoint_is_set_aside_and_training_resumes_from_the_one_before(
        tmp_path, uninterrupted_sae, damaged, capfd, tiny_lm_dir):
    out, sae_args = tmp_path / "sae", train_sae_args(tiny_lm_dir)
    kill_when(sae_args, out, lambda: len(_checkpoints(out)) >= 2, "after checkpoint 2")
    newest = _checkpoints(out)[-1]
    path = newest / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # a copy cut short
    done = subprocess.run(_command(sae_args, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"set aside as {newest.name}.corrupt" in done.stdout, done.stdout[-2000:]
    _assert_same_sae(out, uninterrupted_sae)


# --- reflect train: 5 kill points ----------------------------------------------------------------

def _trial(text: str, correct: bool) -> str:
    return f"Thought: {text}\nAction: Finish[...]\nObservation: Answer is {'CORRECT' if correct else 'INCORRECT'}"


@pytest.fixture(scope="module")
def d_plus_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    raw = []
    for n, (a, b) in enumerate([(2, 2), (3, 5), (6, 1), (7, 2), (4, 4), (9, 3)]):
        gold, wrong = str(a + b), str(a + b + 1)
        raw.append({"id": f"q{n}", "question": f"What is {a}+{b}?", "answer": gold, "task": "arith", "domain": "math",
                    "output": [{"generated_answer": wrong, "reflections": [], "is_correct": False, "trial": 1,
                                "reasoning": _trial(f"It is {wrong}.", False)},
                               {"generated_answer": gold, "is_correct": True, "trial": 2, "instruction": "trace/calculation/low_level",
                                "reflections": [f"I added wrongly and wrote {wrong}. Recompute the sum carefully."],
                                "reasoning": _trial(f"Recomputing, the answer is {gold}.", True)}]})
    atomic_write_jsonl(folder / "raw.jsonl", raw)
    atomic_write_jsonl(folder / "d_plus.jsonl", curate_d_plus(raw))
    return folder


def _train_args(run: Path, model: Path) -> list[str]:
    from helpers.config import configs_dir

    return ["reflect", "train", "--recipe", str(configs_dir() / "sft_two_stage.yaml"), "--data", str(run),
            "--model", str(model), "--max-steps", "4", "--save-steps", "1"]


def _assert_same_model(out: Path, expected: Path) -> None:
    got, want = load_file(out / "merged" / "model.safetensors"), load_file(expected / "merged" / "model.safetensors")
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-6), f"{name} differs from the uninterrupted run"


def test_training_killed_at_four_points_resumes_to_the_same_model(tmp_path, d_plus_run, tiny_lm_dir):
    args = _train_args(d_plus_run, tiny_lm_dir)
    whole = tmp_path / "whole"
    run_to_end(args, whole)
    out = tmp_path / "resumed"
    stage1, stage2 = out / "checkpoints-reflection", out / "checkpoints-correction"
    kill_when(args, out, lambda: (stage1 / "checkpoint-1").is_dir(), "after stage 1 checkpoint 1")
    kill_when(args, out, lambda: (stage1 / "checkpoint-3").is_dir(), "after stage 1 checkpoint 3")
    kill_when(args, out, lambda: (out / "merged-reflection" / "stage.json").is_file(), "after stage 1")
    kill_when(args, out, lambda: (stage2 / "checkpoint-2").is_dir(), "after stage 2 checkpoint 2")
    assert (out / "merged-reflection").is_dir(), "stage 1's model is kept, not retrained"
    run_to_end(args, out)
    _assert_same_model(out, whole)

    # A damaged newest checkpoint is set aside: start again from a copy of the killed run.
    redo = tmp_path / "damaged"
    # trainer_state.json is the last file a checkpoint gets; a newer folder may be half-written.
    kill_when(args, redo, lambda: (redo / "checkpoints-reflection" / "checkpoint-2" / "trainer_state.json").is_file(),
              "after checkpoint 2")
    complete = [p for p in (redo / "checkpoints-reflection").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    newest = max(complete, key=lambda p: int(p.name.split("-")[-1]))
    optimizer = newest / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    done = subprocess.run(_command(args, redo), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (newest.parent / f"{newest.name}.corrupt").is_dir(), "the damaged checkpoint was not set aside"
    _assert_same_model(redo, whole)
    manifest = json.loads((redo / "manifest.json").read_text())
    assert manifest["train_rows"] == {"reflection": 6, "correction": 6}
