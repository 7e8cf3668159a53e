"""Broader classes for ImageNet-1k labels, from the contiguous index ranges the class list is ordered in.

Not the full WordNet tree: a cheap, hand-checked grouping ("tabby" -> "domestic cat", "cat", "animal") that is enough
to search and group by. Indexes outside every range get no parents.
"""

from __future__ import annotations

# (first, last, parents from narrow to broad), inclusive ranges of ImageNet class indexes
RANGES: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 6, ("fish", "animal")),
    (7, 24, ("bird", "animal")),
    (25, 32, ("amphibian", "animal")),
    (33, 68, ("reptile", "animal")),
    (69, 79, ("arthropod", "invertebrate", "animal")),
    (80, 100, ("bird", "animal")),
    (101, 106, ("mammal", "animal")),
    (107, 116, ("invertebrate", "animal")),
    (117, 117, ("mollusc", "invertebrate", "animal")),
    (118, 126, ("crustacean", "invertebrate", "animal")),
    (127, 146, ("bird", "animal")),
    (147, 150, ("marine mammal", "mammal", "animal")),
    (151, 268, ("dog", "mammal", "animal")),
    (269, 280, ("canine", "mammal", "animal")),
    (281, 285, ("domestic cat", "cat", "mammal", "animal")),
    (286, 293, ("wild cat", "cat", "mammal", "animal")),
    (294, 297, ("bear", "mammal", "animal")),
    (298, 299, ("mammal", "animal")),
    (300, 326, ("insect", "invertebrate", "animal")),
    (327, 329, ("echinoderm", "invertebrate", "animal")),
    (330, 364, ("mammal", "animal")),
    (365, 384, ("primate", "mammal", "animal")),
    (385, 388, ("mammal", "animal")),
    (389, 397, ("fish", "animal")),
    (924, 957, ("food",)),
    (959, 969, ("food",)),
    (970, 980, ("landscape",)),
    (984, 990, ("plant",)),
    (991, 997, ("fungus",)),
)


def parents_of(index: int) -> list[str]:
    for first, last, parents in RANGES:
        if first <= index <= last:
            return list(parents)
    return []
