"""Knowledge graphs in the WN18RR text layout, and the queries and filters built from them.

    kg = load_wn18rr("path/to/wn18rr")            # train/valid/test.txt, entity2text.txt, relation2text.txt
    queries = make_queries(kg, kg.splits["test"])  # (h, r, ?) and (t, inverse r, ?) per triple
    known = known_answers(kg)                      # every true answer of (entity, relation): the filter

Each triple gives two queries, as in SimKGC: tail prediction (h, r, ?) and head prediction through
the inverse relation (t, "inverse r", ?), whose condition text is "inverse of <relation text>".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import atomic_write_text
from ..config import project_root

WN18RR_FILES = ("train.txt", "valid.txt", "test.txt", "entity2text.txt", "relation2text.txt")
INVERSE = "inverse "
Triple = tuple[str, str, str]


@dataclass
class KnowledgeGraph:
    """Entities and relations with their texts, and the triples of each split."""

    entity_text: dict[str, str]
    relation_text: dict[str, str]
    splits: dict[str, list[Triple]]
    entities: list[str] = field(init=False)

    def __post_init__(self):
        seen = dict.fromkeys(self.entity_text)
        for triples in self.splits.values():
            for head, _, tail in triples:
                seen.setdefault(head)
                seen.setdefault(tail)
        self.entities = list(seen)
        for entity in self.entities:
            self.entity_text.setdefault(entity, entity)  # an entity without text is named by its id

    @property
    def index(self) -> dict[str, int]:
        """Position of each entity id in ``entities`` (the candidates' order)."""
        return {e: i for i, e in enumerate(self.entities)}


def _read_tsv(path: Path, columns: int) -> list[tuple[str, ...]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != columns:
            raise ValueError(f"{path}:{number}: expected {columns} tab-separated fields, found {len(parts)}.")
        rows.append(tuple(p.strip() for p in parts))
    return rows


def load_wn18rr(folder: str | Path) -> KnowledgeGraph:
    """A graph in the WN18RR text layout: ``train/valid/test.txt`` (head, relation, tail per line),
    ``entity2text.txt`` (entity, text) and ``relation2text.txt`` (relation, text), tab-separated."""
    folder = Path(folder)
    missing = [name for name in WN18RR_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}: a WN18RR-format folder holds {', '.join(WN18RR_FILES)}.")
    splits = {name: _read_tsv(folder / f"{name}.txt", 3) for name in ("train", "valid", "test")}
    return KnowledgeGraph(dict(_read_tsv(folder / "entity2text.txt", 2)),
                          dict(_read_tsv(folder / "relation2text.txt", 2)), splits)


def write_toy_graph(folder: str | Path, seed: int = 0) -> Path:
    """Write a small graph in the WN18RR layout (for offline runs): the words of the synthetic C-STS
    scenes, linked to their near synonyms (``_similar_to``) and to their attribute (``_attribute_of``)."""
    from ..csts.synthetic import ATTRIBUTE_GROUPS

    folder = Path(folder)
    entities = {attribute: attribute for attribute in ATTRIBUTE_GROUPS}
    triples = []
    for attribute, groups in ATTRIBUTE_GROUPS.items():
        for group in groups:
            for word in group:
                entities[word] = word
                triples.append((word, "_attribute_of", attribute))
                triples.extend((word, "_similar_to", other) for other in group if other != word)
    random.Random(seed).shuffle(triples)
    cut = [int(len(triples) * 0.8), int(len(triples) * 0.9)]
    parts = {"train": triples[:cut[0]], "valid": triples[cut[0]:cut[1]], "test": triples[cut[1]:]}
    ids = {name: f"{i:05d}" for i, name in enumerate(entities)}
    for split, rows in parts.items():
        atomic_write_text(folder / f"{split}.txt", "".join(f"{ids[h]}\t{r}\t{ids[t]}\n" for h, r, t in rows))
    atomic_write_text(folder / "entity2text.txt", "".join(f"{ids[e]}\t{text}\n" for e, text in entities.items()))
    atomic_write_text(folder / "relation2text.txt", "_similar_to\tsimilar to\n_attribute_of\tis a value of\n")
    return folder


def shared_wn18rr() -> Path:
    """Where the reference WN18RR folder sits next to the checkout (``../shared/data/wn18rr``)."""
    return project_root().parent / "shared" / "data" / "wn18rr"


def resolve_graph(graph: str, toy_folder: str | Path) -> tuple[KnowledgeGraph, str]:
    """The graph a config names, and a sentence saying which one it is. ``"wn18rr"`` reads
    ``../shared/data/wn18rr`` next to the checkout where present and falls back to the toy graph
    (written to ``toy_folder``); any other value but ``"toy"`` is a folder in the WN18RR layout."""
    if graph == "wn18rr":
        if shared_wn18rr().is_dir():
            return load_wn18rr(shared_wn18rr()), f"WN18RR from {shared_wn18rr()}"
        return load_wn18rr(write_toy_graph(toy_folder)), "the embedded toy graph (no WN18RR folder found)"
    if graph == "toy":
        return load_wn18rr(write_toy_graph(toy_folder)), "the embedded toy graph"
    return load_wn18rr(graph), f"the graph in {graph}"


@dataclass(frozen=True)
class Queries:
    """Queries of both directions: the query's entity, the relation key (``r`` or ``inverse r``),
    their texts, the answer and the direction (``tail``: (h, r, ?); ``head``: (t, inverse r, ?))."""

    head_ids: list[str]
    heads: np.ndarray  # index of the query's own entity in kg.entities
    relations: list[str]
    head_texts: list[str]
    relation_texts: list[str]
    answers: np.ndarray  # index of the right entity in kg.entities
    directions: list[str]

    def __len__(self) -> int:
        return len(self.answers)


def relation_text(kg: KnowledgeGraph, relation: str) -> str:
    """The condition text of a relation key; ``inverse r`` reads "inverse of <text of r>"."""
    base = relation.removeprefix(INVERSE)
    text = kg.relation_text.get(base, base.strip("_").replace("_", " "))
    return f"inverse of {text}" if relation.startswith(INVERSE) else text


def make_queries(kg: KnowledgeGraph, triples: list[Triple]) -> Queries:
    """(h, r, ?) and (t, inverse r, ?) for every triple, in that order."""
    index = kg.index
    heads, relations, answers, directions = [], [], [], []
    for head, relation, tail in triples:
        for source, key, target, direction in ((head, relation, tail, "tail"),
                                               (tail, f"{INVERSE}{relation}", head, "head")):
            heads.append(source)
            relations.append(key)
            answers.append(index[target])
            directions.append(direction)
    return Queries(heads, np.array([index[h] for h in heads], dtype=np.int64), relations,
                   [kg.entity_text[h] for h in heads], [relation_text(kg, r) for r in relations],
                   np.array(answers, dtype=np.int64), directions)


def known_answers(kg: KnowledgeGraph, splits: tuple[str, ...] = ("train", "valid", "test")
                  ) -> dict[tuple[str, str], set[int]]:
    """Every answer of (entity, relation or inverse relation) in ``splits``: with all splits, what
    filtered ranking removes; with ``("train",)``, what training must not treat as a negative."""
    index = kg.index
    known: dict[tuple[str, str], set[int]] = {}
    for split in splits:
        for head, relation, tail in kg.splits[split]:
            known.setdefault((head, relation), set()).add(index[tail])
            known.setdefault((tail, f"{INVERSE}{relation}"), set()).add(index[head])
    return known
