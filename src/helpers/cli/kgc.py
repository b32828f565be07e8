"""``python -m helpers kgc ...``: train SimKGC-style two towers on a graph, and evaluate them.

    python -m helpers kgc train --graph DIR --method router --encoder all-minilm-l6-v2 \
        [--train-triples N] [--epochs E] --out MODEL_DIR
    python -m helpers kgc evaluate --model MODEL_DIR --graph DIR --split test --out METRICS.json

``--graph`` is a folder in the WN18RR layout (train/valid/test.txt, entity2text.txt,
relation2text.txt), or ``wn18rr`` (the shared reference folder) or ``toy`` (a small generated graph).
METRICS.json holds mr, mrr, hits_at_1, hits_at_3, hits_at_10 over both directions, the same under
``tail`` (h, r, ?) and ``head`` (t, inverse r, ?), ``per_relation``, and ``own_entity_top1``.
Bad input (graph folder, model folder, split, output path) is reported in one line before a model loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from ..errors import UserError


def _graph(value: str, scratch: Path):
    from ..kgc.graph import resolve_graph

    if value not in ("wn18rr", "toy") and not Path(value).is_dir():
        raise UserError(f"--graph {value}: no such folder; give a folder in the WN18RR layout, 'wn18rr' or 'toy'.")
    try:
        return resolve_graph(value, scratch / "toy_graph")
    except (FileNotFoundError, ValueError) as error:  # a folder that is not in the WN18RR layout
        raise UserError(f"--graph {value}: {error}") from None


def _train(args) -> int:
    from ..config import preset
    from ..kgc.model import save_kgc_model
    from ..studies.knowledge_graph_completion import KGC_PRESETS, train_model

    out = Path(args.out)
    cfg = preset(KGC_PRESETS, args.profile, encoder=args.encoder, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, self_negative=args.self_negative, pre_batch=args.pre_batch,
                 shared_towers=args.shared_towers, max_length=args.max_length,
                 entity_max_length=args.entity_max_length, seed=args.seed, device=args.device)
    cfg = dataclasses.replace(cfg, train_triples=args.train_triples)  # not given: all training triples
    kg, description = _graph(args.graph, out)
    print(f"graph: {description}; {len(kg.splits['train'])} training triples")
    model, seconds = train_model(cfg, args.method, kg, log=print)
    save_kgc_model(model, out, cfg, graph=description, method=args.method, seconds_per_epoch=seconds)
    print(f"trained {args.method} in {sum(seconds):.0f} s; saved to {out}")
    return 0


def _evaluate(args) -> int:
    from ..artifacts import atomic_write_json
    from ..kgc.model import load_kgc_model
    from ..studies.knowledge_graph_completion import evaluate_model

    out = Path(args.out)
    if not (Path(args.model) / "kgc.json").is_file():
        raise UserError(f"--model {args.model} is not a folder written by `python -m helpers kgc train` "
                         "(it lacks kgc.json).")
    with tempfile.TemporaryDirectory() as scratch:
        kg, description = _graph(args.graph, Path(scratch))
        if args.split not in kg.splits or not kg.splits[args.split]:
            raise UserError(f"--split {args.split}: the graph has no triples there.")
        model = load_kgc_model(args.model, device=args.device)
        start = time.perf_counter()
        report = evaluate_model(model, kg, args.split, args.eval_triples, log=print)
    report.pop("ranks"), report.pop("queries")
    report.update(model=str(args.model), graph=description, seconds=time.perf_counter() - start)
    atomic_write_json(out, report)
    print(f"{args.split}: MRR {report['mrr']:.3f} Hits@1 {report['hits_at_1']:.3f} Hits@3 {report['hits_at_3']:.3f} "
          f"Hits@10 {report['hits_at_10']:.3f} MR {report['mr']:.0f} (tail MRR {report['tail']['mrr']:.3f}, "
          f"head MRR {report['head']['mrr']:.3f}) -> {out}")
    return 0


def add_commands(commands) -> None:
    """Add ``kgc train`` and ``kgc evaluate`` to the ``python -m helpers`` sub-parsers."""
    from ..kgc.model import QUERY_METHODS

    kgc = commands.add_parser("kgc", help="knowledge-graph completion (SimKGC-style two towers)")
    actions = kgc.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train both towers of one method on a graph and save them")
    train.add_argument("--graph", required=True, help="WN18RR-layout folder, 'wn18rr' or 'toy'")
    train.add_argument("--method", required=True, choices=QUERY_METHODS)
    train.add_argument("--encoder", help="embedded name, hub id or folder (default: the profile's)")
    train.add_argument("--train-triples", type=int, help="training triples sampled from train.txt (default: all)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--out", required=True, help="folder for the model, kgc.json and the manifest")
    train.add_argument("--profile", default="default", help="preset the other flags override")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate of both encoders")
    train.add_argument("--self-negative", action=argparse.BooleanOptionalAction, default=None,
                       help="the query's own entity as a negative (default: on)")
    train.add_argument("--pre-batch", type=int, help="earlier batches whose answers are extra negatives")
    train.add_argument("--shared-towers", action=argparse.BooleanOptionalAction, default=None,
                       help="one encoder for queries and entities (default: two)")
    train.add_argument("--max-length", type=int, help="tokens of a query")
    train.add_argument("--entity-max-length", type=int, help="tokens of an entity's text")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="cpu or cuda")
    train.set_defaults(func=_train, out_is_folder=True)  # `python -m helpers` checks --out first
    evaluate = actions.add_parser("evaluate", help="filtered MR / MRR / Hits@k, head and tail prediction apart")
    evaluate.add_argument("--model", required=True, help="folder written by `kgc train`")
    evaluate.add_argument("--graph", required=True, help="WN18RR-layout folder, 'wn18rr' or 'toy'")
    evaluate.add_argument("--split", default="test", choices=["test", "valid"])
    evaluate.add_argument("--eval-triples", type=int, help="triples of the split to rank (default: all)")
    evaluate.add_argument("--out", required=True, help="METRICS.json to write")
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(func=_evaluate)
