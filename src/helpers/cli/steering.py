"""The ``steer`` commands of ``python -m helpers``:

    python -m helpers steer train-sae --model NAME --layer L --tokens N [--width W] --out DIR

trains (or resumes, or reuses) a TopK SAE on the residual stream after decoder layer L, on N
activations of the offline corpus (``helpers.steering.activations``), and writes it in sae-lens
format to DIR with ``DIR/quality.json`` (fraction_variance_explained, mean_l0, dead_fraction,
lm_loss_clean, lm_loss_spliced, measured on held-out tokens).
"""

from __future__ import annotations

import json


def _train_sae(args) -> int:
    from dataclasses import asdict

    from ..artifacts import run_lock
    from ..config import config_values
    from ..errors import UserError
    from ..models import check_model_name, load_lm
    from ..steering.pipeline import build_sae
    from ..steering.sae import SAETrainingSettings, check_settings

    if args.tokens < args.batch_size:
        raise UserError(f"--tokens {args.tokens} is fewer than one training batch (--batch-size {args.batch_size}): "
                        "ask for more tokens (100,000 trains a useful SAE of the embedded LM).")
    if args.heldout_tokens < 1 or args.layer < 0:
        raise UserError("--heldout-tokens must be at least 1 and --layer at least 0.")
    settings = SAETrainingSettings(**config_values(args, SAETrainingSettings))
    check_model_name(args.model)
    with run_lock(args.out):  # settings checked and folder held before the model loads
        check_settings(args.out, {**asdict(settings), "layer": args.layer, "model": args.model})
        model, tokenizer = load_lm(args.model, dtype=args.dtype)
        _, quality, _ = build_sae(model, tokenizer, args.model, args.layer, args.tokens, settings, args.out,
                                  heldout_tokens=args.heldout_tokens, seq_len=args.seq_len, progress=True)
    shown = ("fraction_variance_explained", "mean_l0", "dead_fraction", "lm_loss_clean", "lm_loss_spliced")
    print(json.dumps({k: round(quality[k], 4) for k in shown}, indent=1))
    print(f"SAE and quality.json -> {args.out}")
    return 0


def add_commands(commands) -> None:
    """Add the ``steer`` sub-commands to the main parser's sub-parsers."""
    from ..config import add_config_flags
    from ..steering.settings import HELDOUT_TOKENS, SAETrainingSettings

    steer = commands.add_parser("steer", help="sparse autoencoders and value steering")
    actions = steer.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train-sae", help="train or resume an SAE on one layer's residual stream")
    train.add_argument("--model", required=True, help="embedded name, hub id or local folder")
    train.add_argument("--layer", required=True, type=int, help="decoder layer whose output the SAE reads")
    train.add_argument("--tokens", required=True, type=int, help="training activations (sink tokens left out)")
    add_config_flags(train, SAETrainingSettings, ["width", "k", "epochs", "batch_size", "lr", "seed"],
                     defaults=SAETrainingSettings(),
                     help={"width": "number of SAE features", "k": "active features per token (TopK; the mean L0)",
                           "epochs": "passes over the training activations", "batch_size": "activations per step"})
    train.add_argument("--heldout-tokens", type=int, default=HELDOUT_TOKENS,
                       help="activations held out to measure quality")
    train.add_argument("--seq-len", type=int, default=128, help="tokens per corpus chunk")
    train.add_argument("--dtype", default="float32", help="model dtype while collecting activations")
    train.add_argument("--out", required=True, help="folder for the SAE (sae-lens format) and quality.json")
    train.set_defaults(func=_train_sae, out_is_folder=True)
