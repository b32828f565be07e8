"""Bad input, busy folders and torn files: each case a user met gives one clear line and exit
status 2 before any model loads, never a wrong result with exit 0; written files follow the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import warnings

import pandas as pd
import pytest

from helpers import cli, models
from helpers.artifacts import append_jsonl, atomic_write_json, read_jsonl, repair_jsonl, run_lock
from helpers.errors import UserError


def fails_in_one_line(capsys, argv: list[str], *expected: str) -> str:
    assert cli.main(argv) == 2, f"{argv} did not fail with status 2"
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got:\n{captured.err}"
    for text in expected:
        assert text in lines[0], f"{text!r} missing from: {lines[0]}"
    assert "wrote" not in captured.out
    return lines[0]


# --- torn files and locks -------------------------------------------------------------------------

def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path, capsys):
    path = tmp_path / "raw.jsonl"
    append_jsonl(path, {"id": "a"})
    fragment = '{"id": "b", "out'  # what a killed writer left
    with open(path, "a") as handle:
        handle.write(fragment)
    append_jsonl(path, {"id": "c"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "c"]
    assert f"cut {len(fragment)} bytes of a torn last line" in capsys.readouterr().out
    assert repair_jsonl(path) == 0


def test_a_file_torn_before_its_first_newline_is_emptied(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"id": "a", "outp')
    assert repair_jsonl(path) == len('{"id": "a", "outp') and path.read_bytes() == b""


def test_a_second_process_on_a_locked_folder_fails_at_once(tmp_path):
    script = (f"from helpers.artifacts import run_lock\nwith run_lock({str(tmp_path)!r}):\n"
              f"    print('held', flush=True)\n    import time; time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            with run_lock(tmp_path):
                pass
        assert time.monotonic() - start < 5, "a busy lock must be refused at once, not waited for"
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the kernel released the dead holder's lock
        pass


def test_two_generate_commands_on_one_folder_the_second_fails_at_once(tmp_path, capsys, no_model_loads):
    out = tmp_path / "run"
    out.mkdir()
    script = (f"from helpers.artifacts import run_lock\nwith run_lock({str(out / 'raw.jsonl')!r}):\n"
              f"    print('held', flush=True)\n    import time; time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        fails_in_one_line(capsys, ["reflect", "generate", "--profile", "smoke", "--out", str(out)], "is in use by pid")
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "manifest.json").exists(), "the refused run must not write a manifest"


# --- wrong results that used to exit 0 -------------------------------------------------------------

@pytest.mark.parametrize("count", ["0", "-3"])
def test_generate_refuses_a_question_count_below_one(tmp_path, capsys, no_model_loads, count):
    fails_in_one_line(capsys, ["reflect", "generate", "--profile", "smoke", "--n-questions", count,
                               "--out", str(tmp_path / "run")], "n_questions must be", count)
    assert not (tmp_path / "run" / "raw.jsonl").exists()


def test_generate_refuses_an_empty_tasks_file(tmp_path, capsys, no_model_loads):
    empty = tmp_path / "tasks.jsonl"
    empty.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one line on stderr: no warning printed before it
        fails_in_one_line(capsys, ["reflect", "generate", "--profile", "smoke", "--tasks-file", str(empty),
                                   "--out", str(tmp_path / "run")], "holds no questions", str(empty))


def test_curate_refuses_an_empty_raw_file_and_writes_nothing(tmp_path, capsys, no_model_loads):
    (tmp_path / "raw.jsonl").write_text("")
    fails_in_one_line(capsys, ["reflect", "curate", "--run", str(tmp_path)], "holds no records")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.jsonl"]


def test_a_record_missing_a_field_is_named_before_the_judge_loads(tmp_path, capsys, no_model_loads):
    good = {"id": "q1", "question": "1+1?", "answer": "2",
            "output": [{"generated_answer": "2", "reasoning": "...", "is_correct": True, "trial": 1}]}
    (tmp_path / "raw.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"id": "q2", "question": "?", "answer": "3"}) + "\n")
    fails_in_one_line(capsys, ["reflect", "curate", "--run", str(tmp_path)], "raw.jsonl:2", "'output'")


def test_discover_refuses_value_columns_with_text_cells(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(40, 3)), columns=["care", "power", "security"]).astype(object)
    table.loc[7, "power"] = "bad"
    table["role"] = [f"r{i}" for i in range(40)]  # a real label column, left out with a note
    scores = tmp_path / "scores.csv"
    table.to_csv(scores, index=False)
    fails_in_one_line(capsys, ["values", "discover", "--scores", str(scores), "--method", "pc",
                               "--out", str(tmp_path / "g.json")], "'power'", "row 8", "'bad'")
    assert not (tmp_path / "g.json").exists()


def test_csts_train_refuses_a_header_only_csv_and_saves_nothing(tmp_path, capsys, no_model_loads):
    csv = tmp_path / "train.csv"
    csv.write_text("sentence1,sentence2,condition,label\n")
    fails_in_one_line(capsys, ["csts", "train", "--train", str(csv), "--method", "bi-encoder",
                               "--out", str(tmp_path / "model")], "no rows")
    assert not any((tmp_path / "model").iterdir())
    one_row = tmp_path / "score.csv"
    one_row.write_text("sentence1,sentence2,condition\nA red car.,A blue car.,the colour\n")
    fails_in_one_line(capsys, ["csts", "predict", "--model", str(tmp_path / "model"), "--data", str(one_row),
                               "--out", str(tmp_path / "p.csv")], "not a saved C-STS model")


# --- misleading or late errors ---------------------------------------------------------------------

def test_a_truncated_encrypted_file_is_called_truncated_not_a_wrong_password(tmp_path):
    import io
    import tarfile

    from helpers.csts.data import WrongPasswordError, decrypt_openssl, encrypt_openssl

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"sentence1,sentence2,condition,label\n" + b"a,b,c,3\n" * 400
        info = tarfile.TarInfo("csts/csts_train.csv")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    encrypted = encrypt_openssl(buffer.getvalue(), "secret", salt=b"12345678")
    lines = encrypted.splitlines(keepends=True)
    for cut in (lines[: len(lines) // 2], [encrypted[: len(encrypted) // 2 - 3]]):  # at a line end, mid-line
        with pytest.raises(UserError, match="truncated or damaged"):
            decrypt_openssl(b"".join(cut), "secret")
    with pytest.raises(WrongPasswordError, match="Wrong password"):
        decrypt_openssl(encrypted, "not-it")


@pytest.mark.parametrize("kind", ["directory", "read-only"])
def test_evaluate_checks_its_output_path_before_any_work(tmp_path, capsys, no_model_loads, kind):
    if kind == "directory":
        out, expected = tmp_path / "results", "is a folder"
        out.mkdir()
    else:  # a read-only file system: refused even for root
        folder = tmp_path / "ro"
        folder.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("cannot mount a read-only file system here")
        out, expected = folder / "result.json", "Read-only file system"
    try:
        fails_in_one_line(capsys, ["reflect", "evaluate", "--model", "smollm2-135m-instruct", "--tasks",
                                   "basic_arithmetic", "--n-questions", "2", "--out", str(out)], expected)
    finally:
        if kind == "read-only":
            subprocess.run(["umount", str(tmp_path / "ro")], check=False)


def test_non_utf8_files_are_named_with_line_and_column(tmp_path, capsys, no_model_loads):
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b'{"id": "q1"}\n{"id": "caf\xe9"}\n')
    fails_in_one_line(capsys, ["reflect", "curate", "--run", str(tmp_path)], "raw.jsonl:2:12", "not UTF-8", "0xe9")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_bytes(b'{"question": "Caf\xe9?", "answer": "A"}\n')
    fails_in_one_line(capsys, ["reflect", "generate", "--profile", "smoke", "--tasks-file", str(tasks),
                               "--out", str(tmp_path / "run")], "tasks.jsonl:1:18")
    scores = tmp_path / "scores.csv"
    scores.write_bytes(b"a,b\n1,2\n\xff,3\n")
    fails_in_one_line(capsys, ["values", "discover", "--scores", str(scores), "--method", "pc",
                               "--out", str(tmp_path / "g.json")], "scores.csv:3:1")


def test_an_unknown_model_name_fails_at_once_without_the_hub(tmp_path, capsys, monkeypatch):
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked about a name that cannot be a hub id")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_hub)
    fails_in_one_line(capsys, ["reflect", "generate", "--profile", "smoke", "--model", "smollm2",
                               "--out", str(tmp_path / "run")], "Unknown model 'smollm2'", "not a hub id")
    fails_in_one_line(capsys, ["reflect", "evaluate", "--model", "./no/such/folder", "--tasks", "basic_arithmetic",
                               "--n-questions", "2", "--out", str(tmp_path / "r.json")], "no such folder")
    assert models.check_model_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_train_sae_with_fewer_tokens_than_a_batch_fails_at_once(tmp_path, capsys, no_model_loads):
    fails_in_one_line(capsys, ["steer", "train-sae", "--model", "smollm2-135m-instruct", "--layer", "4",
                               "--tokens", "100", "--out", str(tmp_path / "sae")], "--tokens 100", "batch")


def test_debug_shows_the_traceback_instead(tmp_path):
    with pytest.raises(UserError, match="n_questions"):
        cli.main(["--debug", "reflect", "generate", "--profile", "smoke", "--n-questions", "0",
                  "--out", str(tmp_path / "run")])


def test_the_module_entry_point_prints_one_line_and_exits_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "helpers", "reflect", "curate", "--run", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


# --- permissions -------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_json(tmp_path / "manifest.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_safetensors_results_follow_the_umask_too(tmp_path):
    old = os.umask(0o022)
    try:
        _check_safetensors_and_folders(tmp_path)
    finally:
        os.umask(old)


def _check_safetensors_and_folders(tmp_path):
    import torch

    from helpers.artifacts import follow_umask
    from helpers.steering.activations import ActivationSet

    acts = ActivationSet(torch.zeros(4, 3), torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 0, 1, 1]),
                         torch.tensor([1, 2, 1, 2]), layer=2, sink_positions=0)
    acts.save(tmp_path / "acts.safetensors")  # safetensors alone would write 0600
    assert stat.S_IMODE((tmp_path / "acts.safetensors").stat().st_mode) == 0o644
    folder = tmp_path / "model"
    folder.mkdir(mode=0o700)
    (folder / "w.bin").write_bytes(b"x")
    os.chmod(folder / "w.bin", 0o600)
    follow_umask(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755 and stat.S_IMODE((folder / "w.bin").stat().st_mode) == 0o644
