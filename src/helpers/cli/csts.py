"""``python -m helpers csts ...``: train a C-STS method on a CSV and score a CSV with it.

    python -m helpers csts train --train FILE.csv --method router --encoder all-minilm-l6-v2 --out DIR
    python -m helpers csts predict --model DIR --data FILE.csv --out PREDS.csv

The training CSV needs ``sentence1, sentence2, condition, label`` (label 1-5); the CSV to score needs
the first three. PREDS.csv has one row per input row, in the same order: ``row`` (the input's
position), ``score`` (the model's similarity: cosine, or the cross-encoder's sigmoid) and
``label_scale`` (the score mapped to the 1-5 label scale, 1 + 4 * score clipped to [0, 1]).
"""

from __future__ import annotations

import time


def _train(args) -> int:
    from ..config import preset
    from ..csts.data import read_csts_csv
    from ..csts.methods import build_method
    from ..csts.training import CSTS_PRESETS, save_model, train_method

    cfg = preset(CSTS_PRESETS, args.profile, encoder=args.encoder, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, head_lr=args.head_lr, max_length=args.max_length,
                 contrastive_weight=args.contrastive_weight, seed=args.seed, device=args.device)
    rows = read_csts_csv(args.train)
    model = build_method(args.method, cfg.encoder, cfg.device, cfg.max_length, cfg.hyper_rank, cfg.reweight_layers)
    result = train_method(model, rows, cfg)
    save_model(model, args.out, cfg, train_file=str(args.train), train_rows=len(rows),
               seconds_per_epoch=result.seconds_per_epoch, losses=result.losses)
    print(f"trained {args.method} on {len(rows)} rows in {sum(result.seconds_per_epoch):.0f} s; "
          f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}; saved to {args.out}")
    return 0


def _predict(args) -> int:
    import numpy as np
    import pandas as pd

    from ..artifacts import atomic_write_text
    from ..csts.data import read_csts_csv
    from ..csts.training import load_model, score_rows

    rows = read_csts_csv(args.data, require_label=False)
    model = load_model(args.model, device=args.device)
    start = time.perf_counter()
    scores = score_rows(model, rows, args.batch_size)
    out = pd.DataFrame({"row": np.arange(len(rows)), "score": scores,
                        "label_scale": 1 + 4 * np.clip(scores, 0, 1)})
    atomic_write_text(args.out, out.to_csv(index=False))
    print(f"scored {len(rows)} rows in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


def add_commands(commands) -> None:
    """Add ``csts train`` and ``csts predict`` to the ``python -m helpers`` sub-parsers."""
    from ..csts.methods import METHOD_NAMES

    csts = commands.add_parser("csts", help="conditioned sentence similarity (C-STS)")
    actions = csts.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train one method on a C-STS CSV and save it")
    train.add_argument("--train", required=True, help="CSV with sentence1,sentence2,condition,label")
    train.add_argument("--method", required=True, choices=METHOD_NAMES)
    train.add_argument("--encoder", help="embedded name, hub id or folder (default: the profile's)")
    train.add_argument("--out", required=True, help="folder for the model, its method.json and manifest")
    train.add_argument("--profile", default="default", help="preset the other flags override")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate of the encoder")
    train.add_argument("--head-lr", type=float, help="learning rate of the method's new layers")
    train.add_argument("--max-length", type=int, help="tokens per sequence")
    train.add_argument("--contrastive-weight", type=float, help="weight of the same-pair margin term")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="cpu or cuda")
    train.set_defaults(func=_train, out_is_folder=True)
    predict = actions.add_parser("predict", help="score every row of a CSV with a trained model")
    predict.add_argument("--model", required=True, help="folder written by `csts train`")
    predict.add_argument("--data", required=True, help="CSV with sentence1,sentence2,condition")
    predict.add_argument("--out", required=True, help="CSV to write: row, score, label_scale")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(func=_predict)
