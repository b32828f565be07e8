"""Paths and profiles shared by every notebook and command.

Paths
    ``project_root()`` is the checkout that holds ``pyproject.toml``; ``data_dir()``,
    ``figures_dir()`` and ``cache_dir()`` hang off it (or off ``~/.cache``) and can each be moved
    with an environment variable, which is how the tests send a smoke run's files to a temporary
    folder::

        SLM_NOTEBOOKS_DATA_DIR     where runs write (default <root>/data)
        SLM_NOTEBOOKS_FIGURES_DIR  where save_fig writes (default <root>/figures)
        SLM_NOTEBOOKS_CACHE        converted model weights (default ~/.cache/slm-notebooks)

Profiles
    ``smoke`` (what the tests run), ``default`` (what ``make run`` runs) and ``paper`` (the
    papers' settings, GPU and network expected). Each stage declares one dataclass with its knobs
    and a preset per profile; ``preset(presets, profile, **overrides)`` picks one and applies a
    notebook's overrides, refusing unknown profile or field names::

        @dataclass(frozen=True)
        class DemoConfig:
            n_prompts: int
        DEMO = {"smoke": DemoConfig(4), "default": DemoConfig(64), "paper": DemoConfig(512)}
        cfg = preset(DEMO, "smoke", n_prompts=8)

    A nested config is overridden with a dict (``preset(STEERING_PRESETS, "smoke", sae={"width": 256})``).

Command-line flags
    ``add_config_flags(parser, DemoConfig, ["n_prompts"])`` adds ``--n-prompts`` with the field's
    type; its default is None (the profile's value) or, with ``defaults=DemoConfig()``, the
    field's own default. ``config_values(args, DemoConfig)`` reads them back. A flag and the field
    it sets therefore never disagree, and each default is declared once, in the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

PROFILES = ("smoke", "default", "paper")
ENV_DATA_DIR = "SLM_NOTEBOOKS_DATA_DIR"
ENV_FIGURES_DIR = "SLM_NOTEBOOKS_FIGURES_DIR"
ENV_CACHE_DIR = "SLM_NOTEBOOKS_CACHE"

ConfigT = TypeVar("ConfigT")


def project_root() -> Path:
    """The checkout this package was installed from (editable install), else the working folder."""
    source_root = Path(__file__).resolve().parents[2]
    if (source_root / "pyproject.toml").is_file():
        return source_root
    return Path.cwd()


def data_dir() -> Path:
    """Folder where runs write their artifacts (``data/<stage>/<run>/``)."""
    return Path(os.environ.get(ENV_DATA_DIR) or project_root() / "data")


def figures_dir() -> Path:
    """Folder where ``helpers.plots.save_fig`` writes PNG and HTML figures."""
    return Path(os.environ.get(ENV_FIGURES_DIR) or project_root() / "figures")


def cache_dir() -> Path:
    """Folder for converted model weights; survives ``make clean`` and new checkouts."""
    default = Path.home() / ".cache" / "slm-notebooks"
    return Path(os.environ.get(ENV_CACHE_DIR) or default)


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def configs_dir() -> Path:
    return project_root() / "configs"


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is a known profile name, else raise a ValueError naming them."""
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    return profile


def preset(presets: Mapping[str, ConfigT], profile: str, **overrides: Any) -> ConfigT:
    """The preset of ``profile`` with ``overrides`` applied (``None`` values are ignored).

    Overrides come from a notebook's parameters cell, where ``None`` means "keep the profile's
    value". An override whose name is not a field of the config raises a ValueError that lists
    the valid fields, so that a typo in a parameters cell fails loudly.
    """
    check_profile(profile)
    if profile not in presets:
        raise ValueError(f"This stage has no preset for profile {profile!r}; it has {sorted(presets)}.")
    return _replace(presets[profile], overrides)


def _replace(base: ConfigT, overrides: Mapping[str, Any]) -> ConfigT:
    """``base`` with the non-None ``overrides``; a dict given for a nested config replaces its fields."""
    fields = {field.name for field in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown} for {type(base).__name__}; valid: {sorted(fields)}.")
    changes = {}
    for name, value in overrides.items():
        current = getattr(base, name)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            value = _replace(current, value)
        if value is not None:
            changes[name] = value
    return dataclasses.replace(base, **changes)


def _flag_type(config_cls: type, name: str) -> type:
    """The Python type a flag for field ``name`` converts to (``int | None`` -> int)."""
    hint = typing.get_type_hints(config_cls)[name]
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    if typing.get_origin(hint) is tuple or options[0] is tuple:
        raise TypeError(f"{config_cls.__name__}.{name} is a tuple: give it its own flag and parser.")
    return options[0]


def add_config_flags(parser, config_cls: type, names: list[str], defaults: Any | None = None,
                     help: Mapping[str, str] | None = None,
                     choices: Mapping[str, tuple[Any, ...]] | None = None) -> None:
    """Add ``--field-name`` flags for the ``names`` fields of dataclass ``config_cls``.

    The type comes from the field's annotation (bool fields get ``--x/--no-x``); ``choices`` (per
    field name) limits the values. The default is None, meaning "the profile's value", or with
    ``defaults`` (an instance) that instance's value, shown in the help.
    """
    for name in names:
        kind = _flag_type(config_cls, name)
        default = getattr(defaults, name) if defaults is not None else None
        text = (help or {}).get(name, "")
        text = f"{text} (default: {default})".strip() if defaults is not None else (text or None)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, default=default, help=text,
                                choices=(choices or {}).get(name))


def config_values(args, config_cls: type) -> dict[str, Any]:
    """The flags of ``args`` that name fields of ``config_cls`` (for ``preset`` or the constructor)."""
    names = {field.name for field in dataclasses.fields(config_cls)}
    return {name: value for name, value in vars(args).items() if name in names}
