"""Roles that an LM is asked to play before it answers a value questionnaire.

    roles = generate_roles(100, seed=0, with_bio=True)   # name, gender, job, MBTI type, short bio
    settings = [NO_SETTING, *value_settings(["Power", "Benevolence"])]  # +/- inclination to a value
    personas = cross(roles + [NO_ROLE], settings)
    personas[0].system_prompt()                           # "Here is your trait: ..."

A ``Persona`` is a role (a generated profile, or ``NO_ROLE``, the plain baseline) combined with a
``ValueSetting`` (none, or a "hard prompt" that states an inclination or disinclination to one
value). Generation is seeded: the same ``n``, ``seed`` and ``with_bio`` give the same roles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from .inventory import value_descriptions

FIRST_NAMES = {
    "female": ("Amara", "Beatriz", "Chiara", "Dalia", "Elena", "Farah", "Grace", "Hana", "Ines", "Jun",
               "Keiko", "Laila", "Maya", "Nadia", "Olga", "Priya", "Rosa", "Sofia", "Tamar", "Uma",
               "Vera", "Wanjiru", "Ximena", "Yara", "Zoe"),
    "male": ("Ahmed", "Bruno", "Carlos", "Dmitri", "Emeka", "Felix", "Goran", "Hiro", "Ivan", "Jonas",
             "Kofi", "Luca", "Mateo", "Nikhil", "Omar", "Pavel", "Quentin", "Rafael", "Samir", "Tomas",
             "Umar", "Victor", "Wei", "Yusuf", "Zane"),
}
SURNAMES = ("Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fontaine", "Gupta", "Haddad", "Ito", "Jensen",
            "Kowalski", "Lindqvist", "Mensah", "Novak", "Okafor", "Petrov", "Quispe", "Rossi", "Sato", "Tanaka",
            "Ueda", "Varga", "Walker", "Yilmaz", "Zhou")
JOBS = ("nurse", "software developer", "farmer", "primary school teacher", "accountant", "police officer",
        "chef", "journalist", "electrician", "architect", "social worker", "sales manager", "pilot",
        "pharmacist", "carpenter", "lawyer", "musician", "bus driver", "research scientist", "shop owner",
        "firefighter", "graphic designer", "bank clerk", "priest", "personal trainer", "translator",
        "civil engineer", "hotel receptionist", "investment banker", "veterinarian", "librarian", "soldier",
        "fashion model", "plumber", "politician", "film director", "startup founder", "museum curator",
        "truck driver", "environmental activist")
# The four MBTI letter pairs and the adjective each letter stands for in a generated bio.
MBTI_AXES = ((("E", "outgoing"), ("I", "reserved")), (("S", "practical"), ("N", "imaginative")),
             (("T", "logical"), ("F", "warm-hearted")), (("J", "organised"), ("P", "spontaneous")))


@dataclass(frozen=True)
class Role:
    """A profile the LM plays; the empty profile (``NO_ROLE``) is the plain no-role baseline."""

    name: str
    gender: str = ""
    job: str = ""
    mbti: str = ""
    bio: str = ""

    def trait(self) -> str:
        """The profile in the paper's "Gender: ...; Job: ...; MBTI: ..." form ("" for no role)."""
        if not self.gender:
            return ""
        text = f"Name: {self.name}; Gender: {self.gender}; Job: {self.job}; MBTI: {self.mbti}"
        return f"{text}. {self.bio}" if self.bio else text


NO_ROLE = Role(name="no role")


@dataclass(frozen=True)
class ValueSetting:
    """No setting (``value is None``), or a stated inclination (+1) / disinclination (-1) to a value."""

    value: str | None = None
    direction: int = 0

    def __post_init__(self):
        if (self.value is None) != (self.direction == 0) or self.direction not in (-1, 0, 1):
            raise ValueError(f"A setting is either no value with direction 0, or a value with direction +1 or -1; "
                             f"got value={self.value!r}, direction={self.direction}.")

    @property
    def label(self) -> str:
        return "none" if self.value is None else f"{'+' if self.direction > 0 else '-'}{self.value}"

    @classmethod
    def from_label(cls, label: str) -> "ValueSetting":
        """The setting whose ``label`` is ``label``: "none", "+<value>" or "-<value>" (the inverse
        of ``label``, for the setting column of a scores table)."""
        if label == "none":
            return cls()
        if len(label) < 2 or label[0] not in "+-":
            raise ValueError(f"Not a value-setting label: {label!r}; expected 'none', '+<value>' or '-<value>'.")
        return cls(label[1:], 1 if label[0] == "+" else -1)

    def instruction(self, descriptions: dict[str, str] | None = None) -> str:
        if self.value is None:
            return ""
        description = (descriptions or {}).get(self.value)
        about = f"{self.value} ({description})" if description else self.value
        if self.direction > 0:
            return f"You care deeply about {about}; it guides everything you do."
        return f"You have no regard at all for {about}; you reject it in everything you do."


NO_SETTING = ValueSetting()


@dataclass(frozen=True)
class Persona:
    """A role with a value setting: what one row of the scores table describes."""

    role: Role = NO_ROLE
    setting: ValueSetting = NO_SETTING

    def system_prompt(self, descriptions: dict[str, str] | None = None) -> str:
        """The text put before every question ("" for the plain baseline)."""
        parts = []
        if self.role.trait():
            parts.append(f"Here is your trait: {self.role.trait()}")
        setting = self.setting.instruction(value_descriptions() if descriptions is None else descriptions)
        if setting:
            parts.append(setting)
        return " ".join(parts)


def _bio(rng: random.Random, name: str, gender: str, job: str, mbti: str) -> str:
    words = [dict(axis)[letter] for axis, letter in zip(MBTI_AXES, mbti)]
    pronoun = "She" if gender == "female" else "He"
    return (f"{name} is a {rng.randint(23, 67)}-year-old {job}. {pronoun} is {words[0]}, {words[1]}, "
            f"{words[2]} and {words[3]}.")


def generate_roles(n: int, seed: int = 0, with_bio: bool = False) -> list[Role]:
    """``n`` distinct roles drawn with ``random.Random(seed)``: reproducible, independent of global seeds."""
    capacity = sum(len(names) for names in FIRST_NAMES.values()) * len(SURNAMES)
    if not 0 <= n <= capacity:
        raise ValueError(f"n must lie between 0 and {capacity} (distinct names available), got {n}.")
    rng = random.Random(seed)
    roles, used = [], set()
    while len(roles) < n:
        gender = rng.choice(sorted(FIRST_NAMES))
        name = f"{rng.choice(FIRST_NAMES[gender])} {rng.choice(SURNAMES)}"
        job = rng.choice(JOBS)
        mbti = "".join(rng.choice(axis)[0] for axis in MBTI_AXES)
        if name in used:
            continue
        used.add(name)
        roles.append(Role(name=name, gender=gender, job=job, mbti=mbti,
                          bio=_bio(rng, name, gender, job, mbti) if with_bio else ""))
    return roles


def value_settings(values: Iterable[str], directions: Sequence[int] = (1, -1)) -> list[ValueSetting]:
    """Inclination and/or disinclination settings for each value."""
    return [ValueSetting(value, direction) for value in values for direction in directions]


def cross(roles: Iterable[Role], settings: Iterable[ValueSetting] = (NO_SETTING,)) -> list[Persona]:
    """Every role under every setting, role-major."""
    settings = list(settings)
    return [Persona(role, setting) for role in roles for setting in settings]
