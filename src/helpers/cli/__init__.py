"""Command line for long runs outside notebooks (scripts and clusters use it; flags are stable).

    python -m helpers models list            # embedded models and where their weights are
    python -m helpers models prepare         # convert and cache the embedded models once
    python -m helpers notebooks --profile smoke 00
    python -m helpers tasks list             # registered tasks with domain and answer format
    python -m helpers reflect generate --model NAME --tasks T1,T2 [--tasks-file F.jsonl [--tasks-file-format auto]] \
        --n-questions N --seed S [--shard i/N] --out DIR     # DIR/raw.jsonl + manifest, resumes
    python -m helpers reflect curate --run DIR [--judge NAME]  # DIR/d_plus*.jsonl, d_pref.jsonl
    python -m helpers reflect train --recipe configs/NAME.yaml --data RUN_DIR --out MODEL_DIR
    python -m helpers reflect evaluate --model MODEL --tasks T1,T2 [--tasks-file F.jsonl] \
        --n-questions N --seed S [--exclude RUN_DIR ...] --out RESULT.json  # Acc@t1, Acc@t2 per task, total

Errors of input, settings and files (``helpers.errors.UserError``, missing or unreadable files,
non-UTF-8 text) print one line ``error: ...`` and exit with status 2, after checking what can be
checked (output paths, model names, records) before any model loads; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from pathlib import Path

from .. import models
from ..artifacts import check_output_path
from ..config import add_config_flags
from ..errors import UserError
from ..evaluation.protocol import EvalConfig
from ..reflection.pipeline import ReflectionConfig
from ..tasks import TaskItem
from ..tasks.loaders import TASKS_FILE_FORMATS
from ..threads import apply_threads


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


def _tasks_list(args) -> int:
    from ..tasks.registry import TASKS

    print(f"{'task':26s} {'domain':12s} format")
    for source in TASKS.values():
        print(f"{source.name:26s} {source.domain:12s} {source.answer_format}")
    return 0


def _task_names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _add_task_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """--tasks, --tasks-file and --tasks-file-format, shared by `reflect generate` and `reflect evaluate`
    (``config_cls``: the config whose ``tasks_file_format`` the flag sets)."""
    parser.add_argument("--tasks", help="comma-separated task names (see `tasks list`)")
    parser.add_argument("--tasks-file", help="JSONL in ReflectEvo's data_source format: LogiQA {id, question, answer}, "
                                             "BIG-bench {question, answer}, MATH {problem, level, type, solution}, "
                                             "MBPP {text, code, task_id, test_setup_code, test_list, ...}, or "
                                             "{question, answer[, id, test_list]}")
    add_config_flags(parser, config_cls, ["tasks_file_format"], choices={"tasks_file_format": TASKS_FILE_FORMATS},
                     help={"tasks_file_format": "auto: detect the --tasks-file's format from its fields; or name its "
                                                "answer format: choice (LogiQA), text (BIG-bench), math (MATH), code "
                                                "(MBPP); question/answer rows are then checked that way (default: "
                                                f"{config_cls.tasks_file_format})"})
    parser.add_argument("--allow-weak-sandbox", action="store_true",
                        help="without bubblewrap, run generated code under Python-level guards only "
                             "(recorded as a warning in the run's manifest)")


def _apply_sandbox_setting(args) -> None:
    """--allow-weak-sandbox sets the process-wide setting (the environment, so workers inherit it)."""
    import os

    from ..tasks.sandbox import ENV_WEAK_SANDBOX

    if args.allow_weak_sandbox:
        os.environ[ENV_WEAK_SANDBOX] = "1"


def generation_config(args) -> ReflectionConfig:
    """The configuration `reflect generate` runs with, from its flags (its questions are
    ``pipeline.select_items`` of it, chosen before any model loads)."""
    from ..config import preset
    from ..reflection.pipeline import REFLECTION_PRESETS

    tasks = _task_names(args.tasks) if args.tasks is not None else None
    if args.tasks_file and args.tasks is None:
        tasks = ()
    return preset(REFLECTION_PRESETS, args.profile, model=args.model, reflector=args.reflector, tasks=tasks,
                  tasks_file=args.tasks_file, tasks_file_format=args.tasks_file_format,
                  n_questions=args.n_questions, n_reflections=args.n_reflections,
                  reflections_per_instruction=args.reflections_per_instruction, seed=args.seed,
                  batch_size=args.batch_size, chunk_size=args.chunk_size)


def _reflect_generate(args) -> int:
    from ..reflection.pipeline import generate, parse_shard

    _apply_sandbox_setting(args)
    cfg = generation_config(args)
    start = time.perf_counter()
    path = generate(cfg, args.out, shard=parse_shard(args.shard))
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
    return 0


def _reflect_curate(args) -> int:
    from ..generation import make_engine
    from ..reflection.curation import write_curated
    from ..reflection.pipeline import read_run_records, recorded_config

    records = read_run_records(args.run)  # checked before the judge loads
    # What the run's notebook or command recorded, so that both curate the same sets.
    recorded = {**dataclasses.asdict(ReflectionConfig()), **recorded_config(args.run)}
    judge = args.judge or recorded["judge"] or recorded["model"]
    pairs = recorded["pref_pairs_per_question"] if args.pref_pairs_per_question is None else args.pref_pairs_per_question
    models.check_model_name(judge)
    sizes = write_curated(args.run, records, make_engine(judge), pairs)
    print(" ".join(f"{name}={size}" for name, size in sizes.items()), f"(from {len(records)} questions)")
    return 0


def _reflect_train(args) -> int:
    from ..training import train

    overrides = {"max_steps": args.max_steps} if args.max_steps else {}
    if args.save_steps:
        overrides.update(save_strategy="steps", save_steps=args.save_steps)
    if args.model:
        models.check_model_name(args.model)
    result = train(args.recipe, args.data, args.out, model=args.model, **overrides)
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    loss = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss logged (fewer steps than logging_steps)"
    print(f"trained {result.train_rows} in {result.seconds:.0f} s; {loss}; merged model: {result.merged_dir}")
    return 0


def evaluation_items(args) -> tuple[EvalConfig, list[TaskItem]]:
    """The configuration and the held-out questions (``TaskItem``) of `reflect evaluate`, from its
    flags: every check that can fail (the flags, the model name, the tasks file, the sandbox for code
    answers) comes here, before any model loads."""
    from ..config import preset
    from ..evaluation.protocol import EVAL_PRESETS, heldout_items, training_questions
    from ..tasks.sandbox import require_sandbox

    tasks = _task_names(args.tasks) if args.tasks else ()
    if not tasks and not args.tasks_file:
        raise UserError("Name the tasks to evaluate on (--tasks T1,T2,...) and/or a --tasks-file.")
    if args.n_questions < 1:
        raise UserError(f"--n-questions must be at least 1, got {args.n_questions}.")
    models.check_model_name(args.model)
    trained = training_questions(*args.exclude)  # every question the listed runs (all their rounds) asked
    sources = len(tasks) + bool(args.tasks_file)
    cfg = preset(EVAL_PRESETS, args.profile, tasks=tasks, unseen_tasks=(), tasks_file=args.tasks_file,
                 tasks_file_format=args.tasks_file_format, n_per_task=-(-args.n_questions // sources),
                 seed=args.seed, batch_size=args.batch_size)
    items = heldout_items(cfg, exclude=trained)[: args.n_questions]
    if not items:
        raise UserError("No held-out questions: the tasks and --tasks-file gave none"
                        + (" outside the --exclude runs." if trained else "."))
    if any(item.checker == "code" for item in items):
        require_sandbox()  # code answers run in the sandbox: refuse now, not at the first answer
    return cfg, items


def _reflect_evaluate(args) -> int:
    from ..artifacts import atomic_write_json
    from ..evaluation.protocol import Variant, evaluate_variant, result_json
    from ..tasks.sandbox import sandbox_description

    _apply_sandbox_setting(args)
    cfg, items = evaluation_items(args)
    variant = Variant(args.name or Path(args.model).name, args.model, args.mode)
    start = time.perf_counter()
    result = result_json(variant, cfg, evaluate_variant(variant, items, cfg, progress=True))
    result["sandbox"] = sandbox_description()
    atomic_write_json(args.out, result)
    total = result["total"]
    print(f"{variant.name}: n={total['n']} acc_t1={total['acc_t1']:.3f} acc_t2={total['acc_t2']:.3f} "
          f"acc_self={total['acc_self']:.3f} in {time.perf_counter() - start:.0f} s -> {args.out}")
    return 0


def _notebooks(args) -> int:
    from ..run_notebooks import main as run_main

    return run_main([*args.names, "--profile", args.profile, *(["--force"] if args.force else [])])


# Modules that add their own sub-commands: each defines `add_commands(commands)` taking the
# argparse sub-parsers object, and imports its heavy dependencies only inside the handlers.
DOMAIN_CLIS: tuple[str, ...] = ("helpers.cli.csts", "helpers.cli.kgc", "helpers.cli.causal", "helpers.cli.steering")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True)

    models_parser = commands.add_parser("models", help="embedded models").add_subparsers(dest="action", required=True)
    models_parser.add_parser("list", help="embedded models and their files").set_defaults(func=_models_list)
    prepare = models_parser.add_parser("prepare", help="convert and cache the embedded models")
    prepare.add_argument("--lm", default=models.DEFAULT_LM)
    prepare.add_argument("--encoder", default=models.DEFAULT_ENCODER)
    prepare.set_defaults(func=_models_prepare)

    tasks = commands.add_parser("tasks", help="the task registry").add_subparsers(dest="action", required=True)
    tasks.add_parser("list", help="registered tasks").set_defaults(func=_tasks_list)

    reflect = commands.add_parser("reflect", help="reflection data (ReflectEvo)").add_subparsers(dest="action",
                                                                                              required=True)
    gen = reflect.add_parser("generate", help="trial, reflect, retry; appends to OUT/raw.jsonl and resumes")
    gen.add_argument("--profile", default="default", help="preset the other flags override (default: default)")
    gen.add_argument("--model", help="generator: embedded name, hub id or folder")
    gen.add_argument("--reflector", help="reflector model (default: the generator)")
    _add_task_arguments(gen, ReflectionConfig)
    add_config_flags(gen, ReflectionConfig, ["n_questions", "n_reflections", "reflections_per_instruction", "seed",
                                             "batch_size", "chunk_size"],
                     help={"chunk_size": "questions per resumable chunk",
                           "reflections_per_instruction": "reflections sampled per instruction (2 or more lets "
                                                          "DPO pair them under one prompt)"})
    gen.add_argument("--shard", help="i/N: this machine's share of the questions")
    gen.add_argument("--out", required=True, help="run folder")
    gen.set_defaults(func=_reflect_generate, out_is_folder=True)
    cur = reflect.add_parser("curate", help="write d_plus.jsonl, d_plus_minus.jsonl and d_pref.jsonl")
    cur.add_argument("--run", required=True, help="run folder of `reflect generate`")
    add_config_flags(cur, ReflectionConfig, ["judge", "pref_pairs_per_question"],
                     help={"judge": "LM judge for Dpref (default: the run's judge, else its generator)",
                           "pref_pairs_per_question": "reflection pairs judged per failure (default: the run's)"})
    cur.set_defaults(func=_reflect_curate)

    tra = reflect.add_parser("train", help="train a recipe (SFT / DPO with LoRA) on a generation run's files")
    tra.add_argument("--recipe", required=True, help="configs/NAME.yaml")
    tra.add_argument("--data", required=True, help="run folder of `reflect generate` + `reflect curate`")
    tra.add_argument("--out", required=True, help="folder for adapters, the merged model and the manifest")
    tra.add_argument("--model", help="base model (default: the recipe's model_name_or_path)")
    tra.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    tra.add_argument("--save-steps", type=int, help="save a resumable checkpoint every N steps (default: the recipe's)")
    tra.set_defaults(func=_reflect_train, out_is_folder=True)

    eva = reflect.add_parser("evaluate", help="Acc@t1 / Acc@t2 (oracle) and Acc@self of a model on held-out questions")
    eva.add_argument("--model", required=True, help="embedded name, hub id, or a folder (e.g. MODEL_DIR/merged)")
    _add_task_arguments(eva, EvalConfig)
    eva.add_argument("--n-questions", type=int, required=True, help="questions in total, spread over the tasks")
    add_config_flags(eva, EvalConfig, ["seed"], help={"seed": "question seed (default: the profile's, apart from "
                                                                 "every training seed)"})
    eva.add_argument("--exclude", nargs="+", default=[], metavar="RUN_DIR",
                     help="leave out every question these runs trained on: `reflect generate` folders, or "
                          "self-evolution folders (all rounds)")
    eva.add_argument("--mode", default="reflection", choices=["reflection", "plain", "one_stage"],
                     help="how trial 2 is made: after a reflection, a plain retry, or one-stage (reflection + answer)")
    eva.add_argument("--name", help="variant name in the result (default: the model folder name)")
    eva.add_argument("--profile", default="default", help="decoding preset (token limits, dtype)")
    add_config_flags(eva, EvalConfig, ["batch_size"])
    eva.add_argument("--out", required=True, help="RESULT.json: per task and total n, acc_t1, acc_t2, records")
    eva.set_defaults(func=_reflect_evaluate)

    for module in DOMAIN_CLIS:
        importlib.import_module(module).add_commands(commands)

    notebooks = commands.add_parser("notebooks", help="execute notebooks headless (helpers.run_notebooks)")
    notebooks.add_argument("names", nargs="*")
    notebooks.add_argument("--profile", default="default")
    notebooks.add_argument("--force", action="store_true", help="rerun notebooks already done with this code")
    notebooks.set_defaults(func=_notebooks)
    return parser


def _one_line(error: BaseException) -> str:
    """The message of an input, settings or file error as the one line the user sees."""
    if isinstance(error, UnicodeDecodeError):
        where = getattr(error, "filename", None) or "a file"
        return f"{where}: not UTF-8 text ({error.reason} at byte {error.start}); save the file as UTF-8."
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}."
    return " ".join(str(error).split()) or type(error).__name__


# What a user can fix: bad input and settings (ValueError, and UserError, which is one), and files
# that are missing, unreadable or in the wrong place. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_threads()
    try:
        if getattr(args, "out", None) is not None:
            check_output_path(args.out, folder=getattr(args, "out_is_folder", False))
        return args.func(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted; run the same command again to resume where it stopped.", file=sys.stderr)
        return 130
