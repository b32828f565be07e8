import json

import pytest

from helpers.artifacts import (SettingsChangedError, append_jsonl, atomic_path, atomic_write_json, atomic_write_text,
                               cached, read_jsonl, run_dir, same_settings_or_refuse, write_manifest)


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


def test_same_settings_are_reused_new_folders_are_new_and_others_are_refused_naming_the_fields(tmp_path):
    path = tmp_path / "run" / "settings.json"
    assert same_settings_or_refuse(path, {"lr": 1e-4, "seed": 0}, what="a model", fix="use another --out.") is False
    atomic_write_json(path, {"lr": 1e-4, "seed": 0})
    assert same_settings_or_refuse(path, {"lr": 1e-4, "seed": 0}, what="a model", fix="use another --out.") is True
    with pytest.raises(SettingsChangedError) as refused:
        same_settings_or_refuse(path, {"lr": 2e-4, "seed": 0, "epochs": 1}, what="a model", fix="use another --out.")
    assert refused.value.changed == ["epochs", "lr"], "a field only one side holds differs too"
    assert str(refused.value) == (f"{path.parent} holds a model made with other settings (epochs, lr differ, "
                                  "see settings.json); use another --out.")


def test_partial_settings_compare_only_the_fields_both_hold_and_field_reads_a_nested_record(tmp_path):
    path = tmp_path / "manifest.json"
    atomic_write_json(path, {"config": {"seed": 0, "width": 8}, "time": "now"})
    assert same_settings_or_refuse(path, {"seed": 0}, what="x", fix="y", field="config", partial=True)
    with pytest.raises(SettingsChangedError, match=r"\(seed differ"):
        same_settings_or_refuse(path, {"seed": 1}, what="x", fix="y", field="config", partial=True)
    assert same_settings_or_refuse(path, {"seed": 0}, what="x", fix="y", field="missing") is False


def test_cached_computes_once_per_key_and_recomputes_when_the_key_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    path = tmp_path / "cache" / "value.json"
    assert cached(path, {"k": 1}, compute) == {"value": 1}
    assert cached(path, {"k": 1}, compute) == {"value": 1} and len(calls) == 1, "same key: read back, not recomputed"
    assert cached(path, {"k": 2}, compute) == {"value": 2} and len(calls) == 2, "new key: recomputed"


def test_a_cached_value_without_its_key_file_is_recomputed_never_trusted(tmp_path):
    path = tmp_path / "value.json"
    cached(path, "key", lambda: "old")
    (tmp_path / "value.json.key.json").unlink()  # as a run killed between writing value and key leaves it
    assert cached(path, "key", lambda: "new") == "new"


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"first", "a failed write must keep the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"], "temporary files left behind"
