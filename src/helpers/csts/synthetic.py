"""Synthetic C-STS rows with known labels: templated scenes, one attribute named by the condition.

    rows = synthetic_csts(n_pairs=500, seed=0)   # 2 rows per sentence pair (two conditions)

A scene has five attributes -- object, colour, count, action, place -- and reads like
"three red dogs are running in the park". Each categorical value belongs to a group of near
synonyms (red / crimson / scarlet). The condition names one attribute ("the colour of the things")
and the label follows from the two scenes' values of that attribute only:

* object, colour, action, place: the same value 5, the same group 3, another group 1;
* count: 5 minus the difference of the two counts (at least 1).

The other attributes vary at random, so a model must read the condition to get the label right.
Every sentence pair appears with two different conditions, as in C-STS.
"""

from __future__ import annotations

import random

import pandas as pd

ATTRIBUTE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "object": (("dogs", "puppies", "wolves"), ("cats", "kittens", "tigers"), ("cars", "trucks", "vans"),
               ("birds", "sparrows", "pigeons"), ("children", "kids", "toddlers")),
    "colour": (("red", "crimson", "scarlet"), ("blue", "navy", "azure"), ("green", "olive", "emerald"),
               ("black", "dark grey", "charcoal"), ("yellow", "golden", "amber")),
    "action": (("running", "sprinting", "racing"), ("sleeping", "resting", "napping"),
               ("eating", "feeding", "snacking"), ("jumping", "leaping", "hopping"),
               ("waiting", "standing still", "staying")),
    "place": (("in the park", "in the garden", "on the lawn"), ("on the beach", "by the sea", "at the shore"),
              ("in the city", "on the street", "downtown"), ("in the forest", "in the woods", "among the trees"),
              ("in the snow", "on the ice", "in a blizzard")),
}
COUNTS = ("two", "three", "four", "five", "six", "seven")
ATTRIBUTES = ("object", "colour", "count", "action", "place")
CONDITIONS = {
    "object": ("the kind of thing", "the type of subject", "what the subjects are"),
    "colour": ("the colour", "the colour of the subjects", "what colour they are"),
    "count": ("the number of subjects", "how many there are", "the count"),
    "action": ("the action", "what the subjects are doing", "the activity"),
    "place": ("the location", "where the scene is", "the place"),
}


def sentence(scene: dict[str, str]) -> str:
    """The scene as one sentence, e.g. "three red dogs are running in the park"."""
    return f"{scene['count']} {scene['colour']} {scene['object']} are {scene['action']} {scene['place']}"


def attribute_label(attribute: str, a: str, b: str) -> float:
    """Similarity label in [1, 5] of two values of one attribute (see the module docstring)."""
    if attribute == "count":
        return float(max(1, 5 - abs(COUNTS.index(a) - COUNTS.index(b))))
    if a == b:
        return 5.0
    group_of = {value: g for g, group in enumerate(ATTRIBUTE_GROUPS[attribute]) for value in group}
    return 3.0 if group_of[a] == group_of[b] else 1.0


def _random_scene(rng: random.Random) -> dict[str, str]:
    scene = {name: rng.choice(rng.choice(groups)) for name, groups in ATTRIBUTE_GROUPS.items()}
    scene["count"] = rng.choice(COUNTS)
    return scene


def _related_value(rng: random.Random, attribute: str, value: str, relation: int) -> str:
    """A value that is the same (0), in the same group (1) or in another group (2) as ``value``."""
    if attribute == "count":
        return rng.choice(COUNTS)
    groups = ATTRIBUTE_GROUPS[attribute]
    own = next(g for g in groups if value in g)
    if relation == 0:
        return value
    if relation == 1:
        return rng.choice([v for v in own if v != value])
    return rng.choice(rng.choice([g for g in groups if g is not own]))


def synthetic_csts(n_pairs: int, seed: int = 0) -> pd.DataFrame:
    """``2 * n_pairs`` rows ``sentence1, sentence2, condition, label, attribute`` with exact labels."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n_pairs):
        first = _random_scene(rng)
        second = _random_scene(rng)
        attributes = rng.sample(ATTRIBUTES, 2)
        for attribute in attributes:  # the two conditioned attributes get balanced relations
            second[attribute] = _related_value(rng, attribute, first[attribute], rng.randrange(3))
        for attribute in attributes:
            rows.append({"sentence1": sentence(first), "sentence2": sentence(second),
                         "condition": rng.choice(CONDITIONS[attribute]),
                         "label": attribute_label(attribute, first[attribute], second[attribute]),
                         "attribute": attribute})
    return pd.DataFrame(rows)
