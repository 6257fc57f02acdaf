"""Identities of the synthetic population: a fixed combination of appearance attributes per person.

An identity is sampled once and never changes; every tracklet of that person is rendered from it, and its
attribute row (MARS classes) follows from it. Class conventions (0-based ints, as in the MARS attribute CSV):

| column | classes |
|---|---|
| top color | TOP_COLORS (9; index = MARS top-colour class, 8 = complex: two-colour stripes) |
| bottom color | BOTTOM_COLORS (10; 9 = complex) |
| age | AGES: 0 child, 1 young, 2 adult, 3 old (MARS: young, teenager, adult, old) |
| top length | 0 long sleeves, 1 short sleeves |
| bottom length | 0 long (trousers, long skirt), 1 short (shorts, skirt) |
| bottom type | 0 trousers / shorts, 1 skirt |
| hair | 0 short, 1 long |
| gender | 0 male, 1 female |
| hat, glasses, backpack, shoulder bag, hand bag | 0 no, 1 yes (at most one carried item) |
| shoes color | SHOE_COLORS (5) |

`shared_attributes` (0 <= s < 1) makes hard negatives: each new identity copies every attribute gene with
probability s from a random earlier "look-alike" identity and resamples the others; the full combination is still
unique (resampled until it differs from every earlier identity).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from reid.errors import ReidError

RGB = tuple[int, int, int]

TOP_COLORS: dict[str, RGB] = {
    "black": (28, 28, 30), "purple": (120, 50, 150), "green": (40, 140, 60), "blue": (40, 80, 190),
    "gray": (128, 128, 128), "white": (232, 232, 228), "yellow": (230, 205, 40), "red": (200, 35, 35),
    "complex": (0, 0, 0),
}
BOTTOM_COLORS: dict[str, RGB] = {
    "white": (230, 230, 226), "purple": (115, 50, 145), "black": (25, 25, 28), "green": (45, 125, 55),
    "dark gray": (80, 80, 84), "pink": (235, 140, 180), "yellow": (225, 200, 45), "blue": (45, 70, 170),
    "brown": (120, 75, 40), "complex": (0, 0, 0),
}
SHOE_COLORS: dict[str, RGB] = {
    "black": (20, 20, 20), "white": (235, 235, 235), "brown": (105, 65, 35), "gray": (140, 140, 140),
    "red": (190, 30, 30),
}
HAIR_COLORS: tuple[RGB, ...] = ((25, 20, 18), (85, 55, 30), (200, 170, 100), (150, 70, 30), (170, 170, 170))
SKIN_TONES: tuple[RGB, ...] = (
    (250, 215, 185), (235, 190, 150), (210, 160, 120), (175, 120, 80), (130, 85, 55), (90, 60, 40),
)
BAG_COLORS: tuple[RGB, ...] = ((30, 30, 35), (110, 70, 40), (60, 90, 60), (150, 30, 40), (40, 60, 110), (200, 190, 170))
AGES = ("child", "young", "adult", "old")
LOWER_TYPES = ("trousers", "shorts", "skirt", "long skirt")
CARRY = ("none", "backpack", "shoulder bag", "handbag")

TOP_NAMES = tuple(TOP_COLORS)
BOTTOM_NAMES = tuple(BOTTOM_COLORS)
SHOE_NAMES = tuple(SHOE_COLORS)

# Attribute columns of an identity (the ID-relevant part of the attribute CSV, then the synthetic-only columns)
# and their class counts.
ID_COLUMNS: dict[str, int] = {
    "top color": 9, "bottom color": 10, "age": 4, "top length": 2, "bottom length": 2, "shoulder bag": 2,
    "backpack": 2, "hat": 2, "hand bag": 2, "hair": 2, "gender": 2, "bottom type": 2, "glasses": 2,
    "shoes color": len(SHOE_COLORS),
}

# Genes: the independent choices an identity is made of (shared_attributes copies whole genes).
GENES = ("gender", "age", "skin", "hair_color", "hair_long", "hat", "glasses", "top", "sleeves", "lower",
         "bottom", "shoes", "carry", "build")


@dataclass(frozen=True)
class Identity:
    """One person's fixed appearance. Colours are RGB; `*_rgb2` is the stripe colour of 'complex' garments."""

    pid: int
    gender: int
    age: int
    skin: RGB
    hair_color: int
    hair_long: bool
    hat: bool
    hat_rgb: RGB
    glasses: bool
    top: int
    top_rgb: RGB
    top_rgb2: RGB
    short_sleeves: bool
    lower: int
    bottom: int
    bottom_rgb: RGB
    bottom_rgb2: RGB
    shoes: int
    carry: int
    carry_rgb: RGB
    build: float  # width factor, 0.9 .. 1.15

    def signature(self) -> tuple:
        """The discrete combination that must be unique in a population (pids and shades excluded)."""
        return (self.gender, self.age, self.skin, self.hair_color, self.hair_long, self.hat, self.glasses,
                self.top, self.short_sleeves, self.lower, self.bottom, self.shoes, self.carry)

    def attributes(self) -> dict[str, int]:
        """Class per attribute column (ID_COLUMNS order)."""
        return {
            "top color": self.top, "bottom color": self.bottom, "age": self.age,
            "top length": int(self.short_sleeves), "bottom length": int(self.lower in (1, 2)),
            "shoulder bag": int(self.carry == 2), "backpack": int(self.carry == 1), "hat": int(self.hat),
            "hand bag": int(self.carry == 3), "hair": int(self.hair_long), "gender": self.gender,
            "bottom type": int(self.lower in (2, 3)), "glasses": int(self.glasses), "shoes color": self.shoes,
        }


def _shade(rng: np.random.Generator, rgb: RGB, amount: int = 14) -> RGB:
    """An identity-specific shade of a named colour, small enough to stay inside its class."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _garment(rng: np.random.Generator, palette: dict[str, RGB], index: int) -> tuple[RGB, RGB]:
    names = tuple(palette)
    if names[index] != "complex":
        return _shade(rng, palette[names[index]]), (0, 0, 0)
    a, b = rng.choice(len(names) - 1, size=2, replace=False)
    return _shade(rng, palette[names[a]]), _shade(rng, palette[names[b]])


def _sample_genes(rng: np.random.Generator) -> dict[str, object]:
    gender = int(rng.random() < 0.45)
    age = int(rng.choice(4, p=[0.08, 0.42, 0.38, 0.12]))
    hair_long = bool(rng.random() < (0.7 if gender else 0.12))
    hair_color = 4 if age == 3 and rng.random() < 0.7 else int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
    lower = int(rng.choice(4, p=[0.35, 0.2, 0.3, 0.15] if gender else [0.75, 0.25, 0.0, 0.0]))
    return {
        "gender": gender, "age": age, "skin": int(rng.integers(len(SKIN_TONES))),
        "hair_color": hair_color, "hair_long": hair_long,
        "hat": (bool(rng.random() < 0.2), int(rng.integers(len(BAG_COLORS)))),
        "glasses": bool(rng.random() < 0.2),
        "top": int(rng.choice(9, p=[0.16, 0.07, 0.1, 0.13, 0.12, 0.14, 0.08, 0.1, 0.1])),
        "sleeves": bool(rng.random() < 0.45),
        "lower": lower,
        "bottom": int(rng.choice(10, p=[0.06, 0.05, 0.24, 0.08, 0.13, 0.05, 0.04, 0.22, 0.08, 0.05])),
        "shoes": int(rng.choice(5, p=[0.4, 0.25, 0.15, 0.12, 0.08])),
        "carry": (int(rng.choice(4, p=[0.4, 0.25, 0.2, 0.15])), int(rng.integers(len(BAG_COLORS)))),
        "build": float(rng.uniform(0.9, 1.15)),
    }


def _build(pid: int, genes: dict[str, object], rng: np.random.Generator) -> Identity:
    top_rgb, top_rgb2 = _garment(rng, TOP_COLORS, genes["top"])  # type: ignore[arg-type]
    bottom_rgb, bottom_rgb2 = _garment(rng, BOTTOM_COLORS, genes["bottom"])  # type: ignore[arg-type]
    hat, hat_col = genes["hat"]  # type: ignore[misc]
    carry, carry_col = genes["carry"]  # type: ignore[misc]
    return Identity(
        pid=pid, gender=genes["gender"], age=genes["age"], skin=SKIN_TONES[genes["skin"]],  # type: ignore[index]
        hair_color=genes["hair_color"], hair_long=genes["hair_long"], hat=hat,  # type: ignore[arg-type]
        hat_rgb=BAG_COLORS[hat_col], glasses=genes["glasses"], top=genes["top"],  # type: ignore[arg-type]
        top_rgb=top_rgb, top_rgb2=top_rgb2, short_sleeves=genes["sleeves"], lower=genes["lower"],  # type: ignore[arg-type]
        bottom=genes["bottom"], bottom_rgb=bottom_rgb, bottom_rgb2=bottom_rgb2,  # type: ignore[arg-type]
        shoes=genes["shoes"], carry=carry, carry_rgb=BAG_COLORS[carry_col], build=genes["build"],  # type: ignore[arg-type]
    )


def sample_population(rng: np.random.Generator, pids: list[int], shared_attributes: float = 0.0,
                      max_tries: int = 200) -> list[Identity]:
    """Sample one identity per pid, with unique signatures.

    Args:
        pids: identity numbers, in order (the look-alike of identity k is drawn from identities 0..k-1).
        shared_attributes: probability that a gene is copied from the look-alike (0 = independent identities).
    """
    out: list[Identity] = []
    genes_so_far: list[dict[str, object]] = []
    seen: set[tuple] = set()
    for pid in pids:
        for _ in range(max_tries):
            genes = _sample_genes(rng)
            if genes_so_far and shared_attributes > 0:
                parent = genes_so_far[int(rng.integers(len(genes_so_far)))]
                for name in GENES:
                    if rng.random() < shared_attributes:
                        genes[name] = parent[name]
            ident = _build(pid, genes, rng)
            if ident.signature() not in seen:
                break
        else:
            raise ReidError(f"could not sample {len(pids)} distinct identities with shared_attributes="
                            f"{shared_attributes}; lower shared_attributes or the number of identities")
        seen.add(ident.signature())
        genes_so_far.append(genes)
        out.append(ident)
    return out


def with_pid(identity: Identity, pid: int) -> Identity:
    return replace(identity, pid=pid)
