"""Ablation-planner documents (Markdown) read as plans, so what researchers write is what runs.

Planners (people or LLMs) write ablations as Markdown: under a heading "Ablation Plan", one
``### <title>`` section per ablation with bullet fields ``**Ablated Part**``, ``**Action**`` (REPLACE
or REMOVE), ``**Replacement**`` (a nested list of arms; none for REMOVE) and ``**Metrics**``. The plan
may sit inside a longer document: HTML tags are dropped, and only the nested items of a Replacement
field become arms, so prose, other lists and other headings never do.

Phrases are understood, not matched verbatim ("first_third_layers", "Top-4", "16 heads x 1024
channels", "8 heads × 512", the paper's variant names), and become the arms of the shipped studies
(search/plans.py) on base model5. Each section's baseline is the shipped study's (all layers,
32x2048, W on, model5), added when the section lists only replacements; "(current method)" marks
a listed arm as the baseline. Anything not understood is one ``PlanError`` line naming the phrase
and what is understood, so a document never runs half-understood. This module only parses.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from objectives.results import CATEGORIES
from objectives.variants import VARIANTS
from search.plans import Arm, Plan, PlanError

_POOL = "model.pooling."
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")
_FIELD = re.compile(r"^[-*+]\s+\*\*(?P<key>[^*]+?):?\*\*\s*:?\s*(?P<value>.*)$")
_ITEM = re.compile(r"^(?P<indent>\s+)[-*+]\s+(?P<text>.+)$")
_TAG = re.compile(r"<[^>]*>")
_BASELINE_MARK = re.compile(r"\((?:the\s+)?(?:current(?:\s+method)?|baseline|default)\)", re.I)


@dataclass(frozen=True)
class _Kind:
    """One kind of arm a phrase can name, with the baseline of the shipped study of that kind."""

    name: str
    baseline: Arm
    parse: Callable[[str], Arm | None]


@dataclass
class _Section:
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)


def read_planner_doc(path: str | Path, section: str | None = None) -> list[Plan]:
    """The plans (one per section) of the planner document at ``path``; ``section`` picks one by
    title (case-insensitive) or by study name."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file '{path}' does not exist; pass an existing Markdown file")
    plans = parse_planner_doc(path.read_text(encoding="utf-8"), where=str(path))
    if section is None:
        return plans
    wanted = section.strip().lower()
    chosen = [p for p in plans if wanted in (p.description.lower(), p.name)]
    if not chosen:
        titles = ", ".join(repr(p.description) for p in plans)
        raise PlanError(f"{path}: no section '{section}'; the sections are {titles}")
    return chosen


def parse_planner_doc(text: str, where: str = "planner document") -> list[Plan]:
    """The plans of a planner document's "Ablation Plan"; ``PlanError`` on anything unmapped."""
    sections = _sections(text, where)
    plans = [_plan(s, where) for s in sections if {"action", "ablated part"} & set(s.fields)]
    if not plans:
        raise PlanError(
            f"{where}: the Ablation Plan has no section with **Ablated Part** and **Action**"
        )
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise PlanError(f"{where}: two sections have the same title ({names}); rename one")
    return plans


def _sections(text: str, where: str) -> list[_Section]:
    lines = [_TAG.sub("", html.unescape(line)).rstrip() for line in text.splitlines()]
    start = None
    for number, line in enumerate(lines):
        heading = _HEADING.match(line.strip())
        if heading and "ablation plan" in heading[2].lower():
            start, level = number, len(heading[1])
            break
    if start is None:
        raise PlanError(
            f"{where}: no 'Ablation Plan' heading; a planner document has '## Ablation Plan' "
            "and one '### <title>' section per ablation"
        )
    sections: list[_Section] = []
    current: _Section | None = None
    open_field: str | None = None
    for line in lines[start + 1 :]:
        heading = _HEADING.match(line.strip())
        if heading:
            if len(heading[1]) <= level:
                break  # the plan ends where a heading of its own level or above begins
            current, open_field = _Section(heading[2].strip()), None
            sections.append(current)
            continue
        if current is None or not line.strip():
            continue
        found = _FIELD.match(line.strip())
        item = _ITEM.match(line)
        if found and not item:
            open_field = found["key"].strip().lower()
            current.fields[open_field] = found["value"].strip()
        elif item and open_field in ("replacement", "replacements"):
            current.items.append(item["text"].strip())
        else:
            open_field = None  # prose or another list: nothing after it is an arm
    return sections


def _plan(section: _Section, where: str) -> Plan:
    here = f"{where}: section '{section.title}'"
    for needed in ("ablated part", "action"):
        if not section.fields.get(needed):
            raise PlanError(f"{here} has no **{needed.title()}** field")
    action = section.fields["action"].strip().strip("`*").lower()
    if action not in ("replace", "remove"):
        raise PlanError(f"{here}: Action '{section.fields['action']}' is not REPLACE or REMOVE")
    ablated = section.fields["ablated part"]
    if action == "remove":
        arms, baseline = _removal(ablated, here)
    else:
        arms, baseline = _replacements(section, here)
    return Plan(
        name=_slug(section.title),
        description=section.title,
        ablated=ablated,
        action=action,  # type: ignore[arg-type]
        arms=tuple(arms),
        baseline=baseline,
        metrics=_metrics(section.fields.get("metrics"), here),
    )


def _replacements(section: _Section, here: str) -> tuple[list[Arm], str]:
    phrases = section.items or [p for p in section.fields.get("replacement", "").split(",") if p]
    if not phrases:
        raise PlanError(f"{here}: REPLACE needs the arms as a nested list under **Replacement**")
    parsed = [_arm(phrase, here) for phrase in phrases]
    kinds = {kind.name for kind, _, _ in parsed}
    if len(kinds) > 1:
        raise PlanError(f"{here} mixes {' and '.join(sorted(kinds))}; give each its own section")
    kind = parsed[0][0]
    arms: list[Arm] = []
    for _, arm, _ in parsed:
        if arm.label in [a.label for a in arms]:
            raise PlanError(f"{here} lists '{arm.label}' twice")
        arms.append(arm)
    marked = [arm.label for _, arm, is_baseline in parsed if is_baseline]
    if len(marked) > 1:
        raise PlanError(f"{here} marks {marked} as the current method; mark one")
    if marked:
        return arms, marked[0]
    if kind.baseline.label not in [a.label for a in arms]:
        arms.append(kind.baseline)
    return arms, kind.baseline.label


def _removal(ablated: str, here: str) -> tuple[list[Arm], str]:
    if re.search(r"\bw\b|layer weight", _normalise(ablated)):
        return list(_WEIGHTS), _WEIGHTS[0].label
    raise PlanError(
        f"{here}: cannot remove '{ablated}'; REMOVE understands the trainable layer weights (W)"
    )


def _arm(phrase: str, here: str) -> tuple[_Kind, Arm, bool]:
    is_baseline = bool(_BASELINE_MARK.search(phrase))
    text = _normalise(_BASELINE_MARK.sub("", phrase))
    for kind in _KINDS:
        arm = kind.parse(text)
        if arm is not None:
            return kind, arm, is_baseline
    raise PlanError(
        f"{here}: cannot map '{phrase.strip()}'; understood are layer sets (first/middle/last "
        "third, top K layers, all layers), cross-attention widths (8x512, 16 heads x 1024 "
        f"channels), and the variants {', '.join(_VARIANT_NAMES.values())}"
    )


def _normalise(text: str) -> str:
    """Lower case; ``_``, ``-``, ``×`` and ``*`` as separators; punctuation and spaces folded."""
    text = text.lower().replace("×", " x ").replace("*", " x ")
    text = re.sub(r"[_\-/,.:;`'\"()]+", " ", text)
    return " ".join(text.split())


def _layers(text: str) -> Arm | None:
    third = re.fullmatch(
        r"(?:the )?(first|lower|bottom|early|middle|mid|last|upper|final|late) (?:1 3|third)"
        r"(?: of)?(?: the)?(?: layers?)?",
        text,
    )
    if third:
        part = {"lower": "first", "bottom": "first", "early": "first", "mid": "middle"}.get(
            third[1], third[1]
        )
        part = {"upper": "last", "final": "last", "late": "last"}.get(part, part)
        return Arm(f"{part} third", {_POOL + "layers": f"{part}_third"})
    top = re.fullmatch(r"(?:the )?(?:top|last|final|upper) ?(\d+)(?: layers?)?", text)
    if top:
        k = int(top[1])
        return Arm(f"top {k}", {_POOL + "layers": f"top_k:{k}"})
    if re.fullmatch(r"all(?: the)?(?: layers?)?(?: used)?", text):
        return _LAYERS.baseline
    return None


def _width(text: str) -> Arm | None:
    found = re.fullmatch(
        r"(\d+) ?(?:attention )?(?:heads?)? ?(?:x|by|with|and)? ?(\d+) ?"
        r"(?:channels?|dims?|dimensions?|head dims?|width)?",
        text,
    )
    if not found:
        return None
    heads, width = int(found[1]), int(found[2])
    return Arm(f"{heads}x{width}", {_POOL + "heads": heads, _POOL + "head_dim": width})


# The paper's names of the five variants (docs/PAPER.md), as they appear in planners' documents.
_VARIANT_NAMES = {
    "model1": "EOS last token pooling (causal)",
    "model2": "last layer trainable pooling, causal",
    "model3": "multi layers trainable pooling, causal",
    "model4": "last layer trainable pooling, bidirectional",
    "model5": "multi layers trainable pooling, bidirectional",
}


def _variant(text: str) -> Arm | None:
    if re.fullmatch(r"model ?[1-5]", text):
        name = text.replace(" ", "")
        return Arm(name, dict(VARIANTS[name]))
    if re.search(r"\beos\b|last token", text):
        return Arm("model1", dict(VARIANTS["model1"]))
    pooling = "multi" if re.search(r"multi ?layers?", text) else None
    pooling = pooling or ("last" if re.search(r"last ?layer", text) else None)
    if pooling is None or "pool" not in text:
        return None
    bidirectional = re.search(r"bidirectional|bi directional", text) is not None
    if not bidirectional and "causal" not in text:
        return None  # the attention decides the variant; without it the phrase is ambiguous
    name = {
        ("last", False): "model2",
        ("multi", False): "model3",
        ("last", True): "model4",
        ("multi", True): "model5",
    }[(pooling, bidirectional)]
    return Arm(name, dict(VARIANTS[name]))


_LAYERS = _Kind("layer sets", Arm("all", {_POOL + "layers": "all"}), _layers)
_KINDS = (
    _LAYERS,
    _Kind(
        "cross-attention widths",
        Arm("32x2048", {_POOL + "heads": 32, _POOL + "head_dim": 2048}),
        _width,
    ),
    _Kind("pooling/attention variants", Arm("model5", dict(VARIANTS["model5"])), _variant),
)
_WEIGHTS = (
    Arm("W on", {_POOL + "layer_weights": True}),
    Arm("W off", {_POOL + "layer_weights": False}),
)

_METRIC_PREFIXES = {
    "sts": "STS",
    "retr": "Retrieval",
    "clas": "Classification",
    "clus": "Clustering",
}


def _metrics(text: str | None, here: str) -> tuple[str, ...]:
    """``STS, Clas., Retr., Clus.`` -> the result categories, in the tables' fixed order."""
    if not text or not text.strip():
        return CATEGORIES
    chosen: set[str] = set()
    for part in re.split(r"[,;/&]|\band\b", text):
        word = _normalise(part)
        if not word:
            continue
        match = next((c for p, c in _METRIC_PREFIXES.items() if word.startswith(p)), None)
        if match is None:
            raise PlanError(f"{here}: cannot map metric '{part.strip()}'; understood: {CATEGORIES}")
        chosen.add(match)
    return tuple(c for c in CATEGORIES if c in chosen)


def _slug(title: str) -> str:
    return "-".join(_normalise(title).replace(" x ", " ").split()) or "section"
