import json

import pytest

from helpers.artifacts import (append_jsonl, atomic_write_json, atomic_write_text, read_jsonl, run_dir,
                               write_manifest)


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "result.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2, "b": (1, 2)})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"], "temporary files left behind"


def test_failed_write_keeps_previous_content(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"not serializable": object()})
    assert target.read_text() == "old"


def test_jsonl_append_and_torn_last_line(tmp_path):
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_jsonl(path, {"id": i})
    with open(path, "a") as handle:
        handle.write('{"id": 3, "text": "cut by a ki')  # a run killed mid-write
    assert [r["id"] for r in read_jsonl(path)] == [0, 1, 2]


def test_jsonl_malformed_middle_line_names_line_number(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": 0}\nnot json\n{"id": 2}\n')
    with pytest.raises(ValueError, match="records.jsonl:2"):
        list(read_jsonl(path))


def test_manifest_records_config_models_and_versions(tmp_path):
    folder = run_dir("stage", "run1")
    assert folder.is_dir() and str(folder).startswith(str(tmp_path)), "run_dir must honour SLM_NOTEBOOKS_DATA_DIR"
    manifest = json.loads(write_manifest(folder, {"n": 3}, model={"name": "m"}, seed=7).read_text())
    assert manifest["config"] == {"n": 3} and manifest["seed"] == 7 and manifest["model"] == {"name": "m"}
    assert manifest["packages"]["torch"] and manifest["packages"]["transformers"]
