"""The four metric categories: one vocabulary for task types, category scores, dev proxies, plan
metrics and the table's columns.

A task's category is its mteb ``metadata.type`` (the MTEB leaderboard groups scores the same way), so
the category of a task folder's ``type`` field and of an MTEB hub task is the same word. Members are
strings (``Category.STS == "STS"``), so records written before this enum read back unchanged and a
user's ``--objective STS`` or a plan's ``metrics: [STS]`` is a category as typed. This module imports
nothing, so every layer can name a category.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CATEGORIES", "Category"]


class Category(str, Enum):
    """A metric category; its value is MTEB's task type and the word reports show."""

    STS = "STS"
    RETRIEVAL = "Retrieval"
    CLASSIFICATION = "Classification"
    CLUSTERING = "Clustering"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# The categories in the fixed order of tables and composites, as plain strings (messages list them).
CATEGORIES: tuple[str, ...] = tuple(category.value for category in Category)
