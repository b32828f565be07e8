"""Command line for long runs outside notebooks (scripts and clusters use it; flags are stable).

    python -m helpers models list            # embedded models and where their weights are
    python -m helpers models prepare         # convert and cache the embedded models once
    python -m helpers notebooks --profile smoke 00
"""

from __future__ import annotations

import argparse
import time

from . import models


def _models_list(args) -> int:
    for kind, table in (("lm", models.EMBEDDED_LMS), ("encoder", models.EMBEDDED_ENCODERS)):
        for entry in table.values():
            try:
                where = str(models.embedded_path(entry))
            except models.ModelNotAvailableError:
                where = f"not installed ({entry.pip_install})"
            print(f"{kind:8s} {entry.name:24s} {entry.hub_id:42s} {where}")
    return 0


def _models_prepare(args) -> int:
    start = time.perf_counter()
    models.load_lm(args.lm, device="cpu")
    print(f"LM {args.lm}: ready in {time.perf_counter() - start:.1f} s (cache: {models.cache_dir()})")
    start = time.perf_counter()
    models.load_encoder(args.encoder, device="cpu")
    print(f"encoder {args.encoder}: ready in {time.perf_counter() - start:.1f} s")
    return 0


def _notebooks(args) -> int:
    from .run_notebooks import main as run_main

    return run_main([*args.names, "--profile", args.profile])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    models_parser = commands.add_parser("models", help="embedded models").add_subparsers(dest="action", required=True)
    models_parser.add_parser("list", help="embedded models and their files").set_defaults(func=_models_list)
    prepare = models_parser.add_parser("prepare", help="convert and cache the embedded models")
    prepare.add_argument("--lm", default=models.DEFAULT_LM)
    prepare.add_argument("--encoder", default=models.DEFAULT_ENCODER)
    prepare.set_defaults(func=_models_prepare)

    notebooks = commands.add_parser("notebooks", help="execute notebooks headless (helpers.run_notebooks)")
    notebooks.add_argument("names", nargs="*")
    notebooks.add_argument("--profile", default="default")
    notebooks.set_defaults(func=_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
