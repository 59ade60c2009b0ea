"""Class names as the explorer lists them (numbered), and the classes a typed query finds among them."""

import re

from models.text import printable


def numbered(names: list[str]) -> list[str]:
    """Each class as "number name", the numbers right-aligned so that the names line up (" 7 cat", "17 dog")."""
    width = len(str(len(names) - 1))
    return [f"{label:>{width}} {printable(name)}" for label, name in enumerate(names)]


def matching_classes(names: list[str], query: str) -> list[int]:
    """The classes whose number or name matches query, best first: the class of that number, then names that start
    with it, names with a word that starts with it, names that contain it, and numbers that start with it; each
    group in class order. Case is ignored; an empty query matches every class."""
    query = query.strip().casefold()
    if not query:
        return list(range(len(names)))

    def rank(label: int) -> int | None:
        name = printable(names[label]).casefold()
        if query == str(label):
            return 0
        if name.startswith(query):
            return 1
        if any(word.startswith(query) for word in re.split(r"[\W_]+", name)):
            return 2
        if query in name:
            return 3
        return 4 if str(label).startswith(query) else None

    ranked = [(rank(label), label) for label in range(len(names))]
    return [label for rank_of, label in sorted(r for r in ranked if r[0] is not None)]
