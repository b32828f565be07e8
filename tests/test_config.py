from dataclasses import dataclass

import pytest
import yaml

from helpers.config import configs_dir, preset


@dataclass(frozen=True)
class Knobs:
    size: int
    name: str = "x"


PRESETS = {"smoke": Knobs(1), "default": Knobs(10), "paper": Knobs(100, "paper")}


def test_preset_applies_overrides_and_ignores_none():
    assert preset(PRESETS, "default") == Knobs(10)
    assert preset(PRESETS, "smoke", size=3, name=None) == Knobs(3), "None must mean 'keep the preset'"


def test_preset_rejects_unknown_profile_and_field():
    with pytest.raises(ValueError, match="Unknown profile"):
        preset(PRESETS, "fast")
    with pytest.raises(ValueError, match="valid: \\['name', 'size'\\]"):
        preset(PRESETS, "smoke", szie=3)


def test_every_yaml_in_configs_parses():
    files = sorted(configs_dir().rglob("*.yaml"))
    assert files, "configs/ should hold the accelerate configs at least"
    for path in files:
        content = yaml.safe_load(path.read_text())
        assert isinstance(content, dict) and content, f"{path} is empty or not a mapping"


def test_accelerate_configs_name_a_distributed_type():
    for path in sorted((configs_dir() / "accelerate").glob("*.yaml")):
        content = yaml.safe_load(path.read_text())
        assert content["distributed_type"] in {"NO", "DEEPSPEED", "FSDP", "MULTI_GPU"}, path
        assert content["num_processes"] >= 1, path
        if content["distributed_type"] == "DEEPSPEED":
            assert content["deepspeed_config"]["zero_stage"] in (2, 3), path
