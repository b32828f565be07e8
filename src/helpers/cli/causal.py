"""``python -m helpers values ...``: causal discovery on a scores table, and the paper reproduction.

    python -m helpers values discover --scores FILE.csv --method pc|fci|ges [--alpha A] \\
        [--columns C1,C2,...] [--rows-where COLUMN=VALUES] --out GRAPH.json
    python -m helpers values reproduce-paper --data-dir DIR --model gemma|llama --out GRAPH.json

GRAPH.json holds ``nodes`` and ``edges`` (``[source, target]`` lists) plus how it was made.
``--rows-where steer_dim=,1025,2965`` keeps the rows whose column equals one of the
comma-separated values (an empty entry matches empty cells); without ``--columns`` every numeric
column not used by ``--rows-where`` is a node.
"""

from __future__ import annotations


def parse_rows_where(text: str) -> tuple[str, set[str]]:
    """``"COLUMN=V1,V2"`` -> (column, {"V1", "V2"}); an empty entry stands for an empty cell."""
    column, sep, values = text.partition("=")
    if not sep or not column.strip():
        raise ValueError(f"--rows-where takes COLUMN=VALUES (comma-separated), got {text!r}.")
    return column.strip(), {v.strip() for v in values.split(",")}


def _cell_text(value) -> str:
    """A cell as it reads in the CSV: empty for missing, integers without a trailing ".0"."""
    if value != value or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def select_rows(table, rows_where: str | None):
    if rows_where is None:
        return table, None
    column, wanted = parse_rows_where(rows_where)
    if column not in table.columns:
        raise ValueError(f"--rows-where names column {column!r}, which the scores file lacks; "
                         f"it has {list(table.columns)}.")
    keep = table[column].map(_cell_text).isin(wanted)
    if not keep.any():
        raise ValueError(f"No row has {column} in {sorted(wanted)}.")
    return table[keep].reset_index(drop=True), column


def value_columns(table, used: str | None) -> tuple[list[str], list[str]]:
    """(numeric columns, text columns left out) of a scores table, refusing a column that is mostly
    numbers with a few text cells: that is a data error, not a label column, and dropping it would
    quietly change the graph."""
    import pandas as pd

    from ..causal.discovery import DiscoveryDataError, first_text_cell

    numeric, text = [], []
    for column in (c for c in table.columns if c != used):
        if pd.api.types.is_numeric_dtype(table[column]):
            numeric.append(column)
            continue
        cells = table[column].dropna()
        share = pd.to_numeric(cells, errors="coerce").notna().mean() if len(cells) else 0.0
        if share >= 0.5:
            raise DiscoveryDataError(f"column {column!r} is {share:.0%} numbers but holds text "
                                     f"({first_text_cell(table, column)}): fix those cells, or leave the column out "
                                     "with --columns.")
        text.append(column)
    return numeric, text


def _discover(args) -> int:
    from ..causal.discovery import discover
    from ..artifacts import read_csv

    table, used = select_rows(read_csv(args.scores), args.rows_where)
    left_out: list[str] = []
    if args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    else:
        columns, left_out = value_columns(table, used)
    graph = discover(table, method=args.method, alpha=args.alpha, columns=columns)
    graph.info.update({"scores": args.scores, "rows_where": args.rows_where, "text_columns_left_out": left_out})
    graph.to_json(args.out)
    note = f"; text columns left out: {', '.join(left_out)}" if left_out else ""
    print(f"{len(graph.edges)} edges over {len(columns)} columns from {len(table)} rows ({args.method}){note} "
          f"-> {args.out}")
    return 0


def _reproduce(args) -> int:
    from ..causal.paper import published_graph, reproduce_paper_graph

    graph = reproduce_paper_graph(args.data_dir, args.model)
    graph.to_json(args.out)
    try:
        published = set(published_graph(args.data_dir, args.model).edges)
    except FileNotFoundError:
        published = None
    verdict = "" if published is None else (
        "; identical to the published graph" if set(graph.edges) == published else
        f"; differs from the published graph ({len(published)} edges)")
    print(f"{args.model}: {len(graph.edges)} edges from {graph.info['rows']} rows{verdict} -> {args.out}")
    return 0


def add_commands(commands) -> None:
    """Add the ``values`` sub-commands to the main parser's sub-parsers."""
    values = commands.add_parser("values", help="causal value graphs (discovery, paper reproduction)")
    actions = values.add_subparsers(dest="action", required=True)
    disc = actions.add_parser("discover", help="causal graph of a scores table -> GRAPH.json")
    disc.add_argument("--scores", required=True, help="CSV with one row per role/setting, one column per value")
    disc.add_argument("--method", required=True, choices=["pc", "fci", "ges"])
    disc.add_argument("--alpha", type=float, default=0.05, help="significance level of the Fisher-z tests")
    disc.add_argument("--columns", help="comma-separated value columns (default: every numeric column)")
    disc.add_argument("--rows-where", help="COLUMN=V1,V2: keep rows whose COLUMN is one of the values ('' = empty)")
    disc.add_argument("--out", required=True, help="GRAPH.json to write")
    disc.set_defaults(func=_discover)
    rep = actions.add_parser("reproduce-paper", help="the paper's graph from its published scores")
    rep.add_argument("--data-dir", required=True, help="folder with ans_{gemma,llama}_train_formal.csv")
    rep.add_argument("--model", required=True, choices=["gemma", "llama"])
    rep.add_argument("--out", required=True, help="GRAPH.json to write")
    rep.set_defaults(func=_reproduce)
