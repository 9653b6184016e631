"""What produced a study's numbers, as the report header states it: commit, libraries, data hashes.

Each finished trial records its own in its result (``objectives.trial.provenance``: ``provenance`` holds
the commit and data hashes, ``versions`` the libraries; read with ``storage.study_records``). A
table is only as comparable as the trials behind it, so the header states each value once when
every finished trial agrees and lists every variant with its trial count when they do not, with a
warning naming what differs; trials written before provenance was recorded are counted, not
guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from storage.study_records import read_result

SHORT_COMMIT = 12


@dataclass(frozen=True)
class StudyProvenance:
    """Per recorded field (``commit``, ``<library>``, ``task.<name>``, ``train``), how many finished
    trials carry each value; ``missing`` trials recorded none."""

    commit: Counter[str]
    versions: dict[str, Counter[str]]
    data: dict[str, Counter[str]]
    trials: int
    missing: int

    def facts(self) -> list[tuple[str, str]]:
        """``(label, text)`` lines for a report header."""
        if self.trials == self.missing:
            return [("provenance", f"not recorded ({self.trials} finished trials predate it)")]
        facts = [
            ("commit", _values(self.commit, _short)),
            ("libraries", _fields(self.versions)),
            ("data", _fields(self.data)),
        ]
        if self.missing:
            facts.append(("provenance", f"not recorded by {self.missing} of {self.trials} trials"))
        return facts

    def disagreements(self) -> list[str]:
        """One warning per kind of field on which the finished trials differ."""
        kinds = (
            ("commits", {"commit": self.commit}),
            ("library versions", self.versions),
            ("data", self.data),
        )
        out = []
        for kind, fields in kinds:
            differ = sorted(name for name, values in fields.items() if len(values) > 1)
            if differ:
                which = "" if kind == "commits" else f" ({', '.join(differ)})"
                out.append(
                    f"the finished trials ran on different {kind}{which}, so their scores may not "
                    "be comparable: rerun the study on one checkout under a new --study-name"
                )
        return out


def study_provenance(trials: Iterable[FrozenTrial]) -> StudyProvenance:
    """Count the provenance values of ``trials`` (the finished ones the table rests on)."""
    commit: Counter[str] = Counter()
    versions: dict[str, Counter[str]] = {}
    data: dict[str, Counter[str]] = {}
    total = missing = 0
    for trial in trials:
        total += 1
        result = read_result(trial)
        if result is None or not result.provenance:
            missing += 1
            continue
        recorded = result.provenance
        commit[str(recorded.get("commit") or "not a git checkout")] += 1
        for name, value in result.versions.items():
            versions.setdefault(name, Counter())[str(value)] += 1
        for name, value in (recorded.get("data") or {}).items():
            data.setdefault(name, Counter())[str(value)] += 1
    return StudyProvenance(commit, versions, data, total, missing)


def _short(commit: str) -> str:
    head, dirty, _ = commit.partition("+dirty")
    return head[:SHORT_COMMIT] + ("+dirty" if dirty else "")


def _values(counts: Counter[str], show: Callable[[str], str] = str) -> str:
    """``v`` when one value; ``v1 (3 trials) / v2 (1 trial)`` when the trials disagree."""
    if len(counts) == 1:
        return show(next(iter(counts)))
    return " / ".join(f"{show(v)} ({n} trial{'s' * (n != 1)})" for v, n in counts.most_common())


def _fields(fields: dict[str, Counter[str]]) -> str:
    if not fields:
        return "not recorded"
    return ", ".join(f"{name} {_values(values)}" for name, values in sorted(fields.items()))
