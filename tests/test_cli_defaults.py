"""Each default is declared once: a command-line flag that sets a config field either leaves the
value to the profile (default None) or has exactly the field's own default."""

import argparse
import dataclasses

import pytest

from helpers.cli import build_parser
from helpers.config import add_config_flags, config_values, preset
from helpers.csts.training import CSTSConfig
from helpers.evaluation.protocol import EvalConfig
from helpers.studies.knowledge_graph_completion import KGCConfig
from helpers.reflection.pipeline import ReflectionConfig
from helpers.steering.settings import SAETrainingSettings
from helpers.studies.value_steering import STEERING_PRESETS, SteeringConfig

# (command path, the config its flags set, and which of its fields when not all that share a name)
COMMANDS = [
    (("reflect", "generate"), ReflectionConfig, None),
    (("reflect", "curate"), ReflectionConfig, None),
    (("reflect", "evaluate"), EvalConfig, None),
    (("csts", "train"), CSTSConfig, None),
    (("kgc", "train"), KGCConfig, None),
    (("steer", "train-sae"), SAETrainingSettings, None),
    (("steer", "train-sae"), SteeringConfig, {"heldout_tokens"}),  # its batch_size is the scoring batch
]


def _subcommand(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path,config,only", COMMANDS, ids=[f"{' '.join(p)}-{c.__name__}" for p, c, _ in COMMANDS])
def test_every_flag_that_sets_a_config_field_has_no_default_of_its_own(path, config, only):
    parser = _subcommand(build_parser(), path)
    defaults = {f.name: f.default for f in dataclasses.fields(config) if only is None or f.name in only}
    checked = [a for a in parser._actions if a.dest in defaults]
    assert checked, f"{' '.join(path)} has no flag for any field of {config.__name__}: wrong pairing in the test"
    for action in checked:
        assert action.default is None or action.default == defaults[action.dest], (
            f"{' '.join(path)} {action.option_strings[0]} defaults to {action.default!r} but "
            f"{config.__name__}.{action.dest} to {defaults[action.dest]!r}: take the default from the config")


def test_config_flags_take_the_field_types_and_read_back_into_the_config():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, SAETrainingSettings, ["width", "epochs", "lr"], defaults=SAETrainingSettings())
    args = parser.parse_args(["--width", "512", "--epochs", "2.5"])
    values = config_values(args, SAETrainingSettings)
    assert values == {"width": 512, "epochs": 2.5, "lr": SAETrainingSettings.lr}
    assert SAETrainingSettings(**values).width == 512
    with pytest.raises(SystemExit):
        parser.parse_args(["--width", "wide"])


def test_a_nested_config_is_overridden_field_by_field_with_a_dict():
    cfg = preset(STEERING_PRESETS, "smoke", sae={"width": 256, "k": None})
    smoke = STEERING_PRESETS["smoke"]
    assert cfg.sae == dataclasses.replace(smoke.sae, width=256), "None keeps the profile's value, as at the top level"
    with pytest.raises(ValueError, match="Unknown setting"):
        preset(STEERING_PRESETS, "smoke", sae={"widht": 256})
