"""Ablation plans as planners write them: documents (Markdown inside HTML) and AblationBench JSONL.

A planner (a person or an LLM) writes ablations under a heading "Ablation Plan": one section per
ablation with the fields **Ablated Part**, **Action** (REPLACE, REMOVE or ADD), **Replacement** (a
list of arms; none for REMOVE) and **Metrics**. Real output wraps this in decoration: a ``<style>``
block, ``<div>`` wrappers, headings as ``<h2>`` or ``<h3>`` (or Markdown ``#``) with emoji that an
earlier step decoded in the wrong charset (``ðŸ“‹``), a reasoning trace and prose before and after.
The document's structure is read with real parsers: markdown-it for the Markdown, Python's
``html.parser`` for the HTML inside it (headings, list items, text; ``<style>`` dropped), after a
cp1252 -> UTF-8 round trip repairs the charset damage. Only the items of a Replacement field become
arms, so prose and other lists never do. The same records also come as JSON lines (AblationBench:
``{"name", "ablated_part", "action", "replacement": [...], "metrics": [...]}``, one per line).

Each phrase becomes an arm through the vocabulary of search/plan_phrases.py, read together with the
ablated part; when the list omits the current method, its arm (the shipped study's baseline) is
added as the baseline. A section whose ablated part or phrases cannot be mapped is never guessed:
it is skipped, listed with the phrase that failed and what was understood, and the other sections
run; only when nothing maps is it an error (one ``PlanError`` line). This module only parses.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from objectives.categories import CATEGORIES, Category
from search.plan_phrases import (
    PhraseError,
    Reading,
    baseline_of,
    is_layer_count,
    normalise,
    read_phrase,
    read_removal,
)
from search.plans import Plan, PlanError

__all__ = [
    "AblationRecord",
    "DocumentStudy",
    "PlanDocument",
    "Skipped",
    "parse_plan_document",
    "parse_planner_doc",
    "read_plan_document",
    "read_planner_doc",
    "records_of_document",
    "records_of_jsonl",
]

ADDED = ""  # the phrase of an arm the planner did not list: the current method, added


@dataclass(frozen=True)
class AblationRecord:
    """One ablation as the planner wrote it, before any reading: a document section or a JSON line."""

    title: str
    ablated_part: str = ""
    action: str = ""
    replacements: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A section that does not run: its title, the phrase that failed ('' when a field is missing)
    and why, with what was understood."""

    title: str
    phrase: str
    reason: str

    def line(self) -> str:
        return f"skipped section '{self.title}': {self.reason}"


@dataclass(frozen=True)
class DocumentStudy:
    """A section that maps: its plan, the phrase each arm came from (label -> phrase), and notes
    (metrics that are not measured here)."""

    plan: Plan
    phrases: dict[str, str]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanDocument:
    """A planner document or JSONL plan, read: the studies it maps to and the sections skipped."""

    where: str
    studies: tuple[DocumentStudy, ...]
    skipped: tuple[Skipped, ...] = ()
    sections: int = 0  # of the whole document, when ``studies`` is the one --section picked

    def plans(self) -> list[Plan]:
        return [study.plan for study in self.studies]

    def summary(self) -> list[str]:
        """What a launch prints first: how many sections map, then each skipped one and each note."""
        if self.sections:
            (study,) = self.studies
            title = study.plan.description
            lines = [f"plan {self.where}: section '{title}' of {self.sections}"]
        else:
            total = len(self.studies) + len(self.skipped)
            lines = [f"plan {self.where}: {len(self.studies)} of {total} sections map to studies"]
        lines += [f"  {skip.line()}" for skip in self.skipped]
        for study in self.studies:
            lines += [f"  section '{study.plan.description}': {note}" for note in study.notes]
        return lines


def read_plan_document(path: str | Path, section: str | None = None) -> PlanDocument:
    """The plan document at ``path`` (``.jsonl``: AblationBench records; anything else: a planner
    document); ``section`` picks one by title (case-insensitive) or by study name."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file '{path}' does not exist; pass an existing plan file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    return parse_plan_document(text, where=str(path), jsonl=jsonl, section=section)


def parse_plan_document(
    text: str, where: str = "planner document", jsonl: bool = False, section: str | None = None
) -> PlanDocument:
    """The studies of a planner document (or JSONL records); ``PlanError`` only when nothing maps."""
    records = records_of_jsonl(text, where) if jsonl else records_of_document(text, where)
    studies: list[DocumentStudy] = []
    skipped: list[Skipped] = []
    for record in records:
        try:
            study = _study(record)
            if study.plan.name in [s.plan.name for s in studies]:
                raise _Skip("", "an earlier section has the same title; rename one")
            studies.append(study)
        except _Skip as skip:
            skipped.append(Skipped(record.title, skip.phrase, skip.reason))
    document = PlanDocument(where, tuple(studies), tuple(skipped))
    if section is not None:
        document = _pick(document, section)
    if not document.studies:
        reasons = "; ".join(skip.line() for skip in document.skipped)
        raise PlanError(f"{where}: no section maps to a study: {reasons}")
    return document


def read_planner_doc(path: str | Path, section: str | None = None) -> list[Plan]:
    """The plans (one per mapped section) of the plan document at ``path``."""
    return read_plan_document(path, section).plans()


def parse_planner_doc(text: str, where: str = "planner document") -> list[Plan]:
    """The plans (one per mapped section) of a planner document's text."""
    return parse_plan_document(text, where).plans()


def _pick(document: PlanDocument, section: str) -> PlanDocument:
    wanted = section.strip().lower()
    for study in document.studies:
        if wanted in (study.plan.description.lower(), study.plan.name):
            total = len(document.studies) + len(document.skipped)
            return PlanDocument(document.where, (study,), sections=total)
    for skip in document.skipped:
        if wanted in (skip.title.lower(), _slug(skip.title)):
            raise PlanError(f"{document.where}: section '{skip.title}' is skipped: {skip.reason}")
    titles = [s.plan.description for s in document.studies] + [s.title for s in document.skipped]
    listed = ", ".join(repr(t) for t in titles)
    raise PlanError(f"{document.where}: no section '{section}'; the sections are {listed}")


# --- the structure of a document -------------------------------------------------------------


@dataclass
class _Heading:
    level: int
    text: str


@dataclass
class _Item:
    """A list item: its own lines of text and its nested items."""

    lines: list[str]
    children: list[_Item] = field(default_factory=list)


@dataclass
class _List:
    items: list[_Item]


@dataclass
class _Para:
    lines: list[str]


@dataclass
class _Records:
    """AblationBench JSON lines in a fenced code block of the document."""

    records: list[AblationRecord]


_Block = _Heading | _List | _Para | _Records
_MARKDOWN = MarkdownIt("commonmark")
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_PLAN_HEADING = re.compile(r"\bablations? (?:study )?plans?\b|\bplanned ablations\b")


def records_of_document(text: str, where: str = "planner document") -> list[AblationRecord]:
    """The ablations of a planner document: the sections under its "Ablation Plan" heading (or,
    when it has none, every section that has the fields), as written."""
    blocks = list(_blocks(_repair(text)))
    fenced = [r for b in blocks if isinstance(b, _Records) for r in b.records]
    start = next(
        (i for i, b in enumerate(blocks) if isinstance(b, _Heading) and _is_plan_heading(b)), None
    )
    if start is None:
        records = list(_sections(blocks))
    else:
        level = blocks[start].level  # type: ignore[union-attr]
        ends = (
            i
            for i in range(start + 1, len(blocks))
            if isinstance(blocks[i], _Heading) and blocks[i].level <= level  # type: ignore[union-attr]
        )
        records = list(_sections(blocks[start + 1 : next(ends, len(blocks))]))
        # sections at the plan heading's own level ("## Ablation Plan", "## 1. Layers") follow it
        records = records or list(_sections(blocks[start + 1 :]))
    records += fenced
    if not records:
        if start is None:
            raise PlanError(
                f"{where}: no 'Ablation Plan' heading and no section with **Ablated Part** and "
                "**Action**; a planner document has '## Ablation Plan' and one '### <title>' "
                "section per ablation"
            )
        raise PlanError(
            f"{where}: the Ablation Plan has no section with **Ablated Part** and **Action**"
        )
    return records


def _is_plan_heading(heading: _Heading) -> bool:
    return _PLAN_HEADING.search(normalise(heading.text)) is not None


def _repair(text: str) -> str:
    """Undo UTF-8 read as cp1252 (``ðŸ“‹`` -> the emoji), run by run; other text is left alone."""

    def fix(run: re.Match[str]) -> str:
        try:
            data = bytes(_cp1252_byte(c) for c in run[0])
            return data.decode("utf-8")
        except (UnicodeError, ValueError):
            return run[0]

    return re.sub(r"[^\x00-\x7f]{2,}", fix, text)


def _cp1252_byte(char: str) -> int:
    try:
        return char.encode("cp1252")[0]
    except UnicodeEncodeError:
        return ord(char)  # a C1 control that cp1252 leaves undefined; > 255 raises ValueError


def _blocks(text: str, depth: int = 0) -> Iterator[_Block]:
    """Headings, lists and paragraphs in document order, HTML blocks opened up."""
    root = SyntaxTreeNode(_MARKDOWN.parse(text))
    yield from _node_blocks(root.children, depth)


def _node_blocks(nodes: list[SyntaxTreeNode], depth: int) -> Iterator[_Block]:
    for node in nodes:
        if node.type == "heading":
            yield _Heading(int(node.tag[1]), _title(" ".join(_inline_lines(node.children[0]))))
        elif node.type == "paragraph":
            yield _Para(_inline_lines(node.children[0]))
        elif node.type in ("bullet_list", "ordered_list"):
            yield _List([_item(child) for child in node.children])
        elif node.type == "blockquote":
            yield from _node_blocks(node.children, depth)
        elif node.type == "html_block" and depth < 3:
            yield from _html_blocks(node.content, depth)
        elif node.type == "fence" and '"ablated_part"' in node.content:
            with contextlib.suppress(PlanError):  # not JSON lines after all: a code block
                yield _Records(records_of_jsonl(node.content, "a fenced block"))


def _item(node: SyntaxTreeNode) -> _Item:
    item = _Item([])
    for child in node.children:
        if child.type == "paragraph":
            item.lines += _inline_lines(child.children[0])
        elif child.type in ("bullet_list", "ordered_list"):
            item.children += [_item(grandchild) for grandchild in child.children]
    return item


def _inline_lines(inline: SyntaxTreeNode) -> list[str]:
    """The text of an inline run, one string per line: emphasis markers and HTML tags dropped."""
    parts: list[str] = []
    for token in (inline.token.children if inline.token else None) or []:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak") or (
            token.type == "html_inline" and re.match(r"<br\b", token.content, re.I)
        ):
            parts.append("\n")
        elif token.type == "image":
            parts.append(token.content)
    return [line.strip() for line in "".join(parts).split("\n") if line.strip()]


def _title(text: str) -> str:
    """A heading's words: emoji, symbols and a number ("1.", "2)") before the first word dropped."""
    return re.sub(r"^(?:[^\w(]+|\d+[.)](?=\s))+", "", text).strip()


class _HtmlText(HTMLParser):
    """An HTML block as headings and the Markdown text between them (``<li>`` as list items)."""

    _SKIP = ("style", "script", "head", "title")
    _BREAKS = ("p", "div", "br", "tr", "section", "details", "summary", "ul", "ol", "blockquote")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[int, str]] = []  # (heading level, text); level 0: Markdown text
        self.text: list[str] = []
        self.heading: tuple[int, list[str]] | None = None
        self.skipping = 0
        self.lists = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in _HEADING_TAGS:
            self._flush()
            self.heading = (_HEADING_TAGS[tag], [])
        elif tag in ("ul", "ol"):
            self.lists += 1
            self.text.append("\n")
        elif tag == "li":
            self.text.append("\n" + "  " * max(0, self.lists - 1) + "- ")
        elif tag in self._BREAKS:
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _HEADING_TAGS and self.heading is not None:
            level, words = self.heading
            self.out.append((level, _title(" ".join("".join(words).split()))))
            self.heading = None
        elif tag in ("ul", "ol"):
            self.lists = max(0, self.lists - 1)
            self.text.append("\n\n")
        elif tag in self._BREAKS:
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        (self.heading[1] if self.heading is not None else self.text).append(data)

    def _flush(self) -> None:
        if "".join(self.text).strip():
            self.out.append((0, "".join(self.text)))
        self.text = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html_blocks(html: str, depth: int) -> Iterator[_Block]:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    for level, text in parser.out:
        if level:
            yield _Heading(level, text)
        else:
            yield from _blocks(text, depth + 1)


# --- sections and their fields ---------------------------------------------------------------

_FIELDS = {
    "ablated part": "part",
    "ablated component": "part",
    "ablated_part": "part",
    "component": "part",
    "action": "action",
    "replacement": "replacement",
    "replacements": "replacement",
    "replace with": "replacement",
    "replaced with": "replacement",
    "alternatives": "replacement",
    "variants": "replacement",
    "metrics": "metrics",
    "metric": "metrics",
    "evaluation metrics": "metrics",
}
_FIELD_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z _]{1,30}?)\s*[:：]\s*(.*)$")


@dataclass
class _Fields:
    """The fields of one section while it is read."""

    title: str
    values: dict[str, str] = field(default_factory=dict)
    arms: list[str] = field(default_factory=list)

    def record(self) -> AblationRecord:
        return AblationRecord(
            title=self.title,
            ablated_part=self.values.get("part", ""),
            action=self.values.get("action", ""),
            replacements=tuple(self.arms) or _split(self.values.get("replacement", "")),
            metrics=_metric_parts(self.values.get("metrics", "")),
        )

    def is_ablation(self) -> bool:
        return bool({"part", "action"} & set(self.values))


def _field(line: str) -> tuple[str, str] | None:
    found = _FIELD_LINE.match(line)
    if found is None:
        return None
    key = _FIELDS.get(" ".join(found[1].lower().split()))
    return (key, found[2].strip()) if key else None


def _sections(body: list[_Block]) -> Iterator[AblationRecord]:
    """Each heading in ``body`` starts a section; those with the fields are ablations (so are list
    items whose nested items are fields, as some planners number their ablations)."""
    current: _Fields | None = None
    nested: list[AblationRecord] = []  # numbered ablations inside the section, after it
    pending = False  # a Replacement field without a value: its arms are the list that follows
    for block in [*body, _Heading(0, "")]:
        if isinstance(block, _Heading):
            if current is not None and current.is_ablation():
                yield current.record()
            yield from nested
            current, nested, pending = _Fields(block.text), [], False
        elif isinstance(block, _Para):
            pending = _read_lines(current, block.lines) if current else False
        elif isinstance(block, _List):
            if current is not None and pending:
                current.arms += [" ".join(item.lines) for item in block.items if item.lines]
            else:
                for item in block.items:
                    nested += _read_item(current, item)
            pending = False


def _read_lines(fields: _Fields, lines: list[str]) -> bool:
    """Read field lines (a line that is no field continues the field before it); True when the
    last field is a Replacement still waiting for its arms."""
    key = None
    for line in lines:
        found = _field(line)
        if found:
            key, value = found
            fields.values[key] = value
        elif key == "replacement" and not fields.values[key]:
            fields.arms.append(line)  # Replacement: then one arm per line
        elif key is not None:
            fields.values[key] += " " + line
        else:
            return False  # prose: nothing after it is an arm
    return key == "replacement" and not fields.values["replacement"] and not fields.arms


def _read_item(fields: _Fields | None, item: _Item) -> Iterator[AblationRecord]:
    found = _field(item.lines[0]) if item.lines else None
    if found and fields is not None:
        before = len(fields.arms)
        _read_lines(fields, item.lines)
        if found[0] == "replacement" and item.children and len(fields.arms) == before:
            fields.arms += [" ".join(child.lines) for child in item.children if child.lines]
    elif item.lines and any(c.lines and _field(c.lines[0]) for c in item.children):
        nested = _Fields(_title(re.sub(r":\s*$", "", " ".join(item.lines))))
        for child in item.children:
            yield from _read_item(nested, child)
        if nested.is_ablation():
            yield nested.record()


def _split(value: str) -> tuple[str, ...]:
    """A Replacement written inline: one arm if it reads as one ("1024 channels, 16 heads"), else
    the parts between semicolons or commas."""
    value = value.strip()
    if not value:
        return ()
    if ";" not in value:
        try:
            read_phrase(value)
            return (value,)
        except PhraseError:
            pass
    parts = re.split(r";" if ";" in value else r",", value)
    return tuple(p for p in (re.sub(r"^\s*(?:and|or)\s+", "", p).strip() for p in parts) if p)


def _metric_parts(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in re.split(r"[,;/&]|\band\b", text) if p.strip())


# --- JSONL records ---------------------------------------------------------------------------


def records_of_jsonl(text: str, where: str = "plan.jsonl") -> list[AblationRecord]:
    """AblationBench plan records, one JSON object per line (blank lines ignored)."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlanError(
                f"{where}:{number}: not JSON ({exc.msg}); one ablation per line"
            ) from None
        if not isinstance(data, dict):
            raise PlanError(
                f"{where}:{number}: a line must be a JSON object with name, ablated_part, "
                "action, replacement and metrics"
            )
        records.append(
            AblationRecord(
                title=str(data.get("name") or f"ablation {number}").strip(),
                ablated_part=str(data.get("ablated_part") or ""),
                action=str(data.get("action") or ""),
                replacements=_strings(data.get("replacement", data.get("replacements"))),
                metrics=_strings(data.get("metrics"), split=_metric_parts),
            )
        )
    if not records:
        raise PlanError(f"{where}: no ablation; write one JSON object per line")
    return records


def _strings(value: Any, split: Any = _split) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return split(value)
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return (str(value),)


# --- records as plans ------------------------------------------------------------------------


class _Skip(Exception):
    def __init__(self, phrase: str, reason: str) -> None:
        super().__init__(reason)
        self.phrase, self.reason = phrase, reason


def _study(record: AblationRecord) -> DocumentStudy:
    for value, name in ((record.ablated_part, "Ablated Part"), (record.action, "Action")):
        if not value.strip():
            raise _Skip("", f"it has no **{name}** field")
    word = (normalise(record.action).split() or [""])[0]
    if word.startswith("replac"):
        action = "replace"
    elif word.startswith(("remov", "delet", "drop")):
        action = "remove"
    elif word in ("add", "adding", "added"):
        action = "add"
    else:
        action = record.action.strip()
        raise _Skip(action, f"Action '{action}' is not REPLACE, REMOVE or ADD")
    metrics, notes = _metrics(record.metrics)
    try:
        if action == "remove":
            arms = read_removal(record.ablated_part)
            phrases = {arms[0].label: ADDED, arms[1].label: f"REMOVE {record.ablated_part.strip()}"}
            baseline = arms[0].label
        else:
            arms, phrases, baseline = _replacements(record, action)
    except PhraseError as exc:
        raise _Skip(exc.phrase, str(exc)) from None
    try:
        plan = Plan(
            name=_slug(record.title),
            description=record.title,
            ablated=" ".join(record.ablated_part.split()).rstrip("."),
            action="remove" if action == "remove" else "replace",
            arms=tuple(arms),
            baseline=baseline,
            metrics=metrics,
        )
    except PlanError as exc:
        raise _Skip("", str(exc)) from None
    return DocumentStudy(plan, phrases, notes)


def _replacements(record: AblationRecord, action: str) -> tuple[list[Any], dict[str, str], str]:
    if not record.replacements:
        raise _Skip("", f"{action.upper()} needs the arms as a list under **Replacement**")
    layer_count = is_layer_count(record.ablated_part)
    readings: list[Reading] = [read_phrase(p, layer_count) for p in record.replacements]
    kinds = list(dict.fromkeys(r.kind for r in readings))
    if len(kinds) > 1:
        other = next(r for r in readings if r.kind == kinds[1])
        raise _Skip(
            other.phrase,
            f"it mixes {kinds[0]} and {kinds[1]} ('{other.phrase}'); give each its own section",
        )
    arms: list[Any] = []
    phrases: dict[str, str] = {}
    for reading in readings:
        if reading.arm.label in phrases:
            raise _Skip(
                reading.phrase,
                f"'{phrases[reading.arm.label]}' and '{reading.phrase}' are the same arm "
                f"'{reading.arm.label}'",
            )
        arms.append(reading.arm)
        phrases[reading.arm.label] = reading.phrase
    marked = [r for r in readings if r.marked_baseline]
    if len(marked) > 1:
        listed = ", ".join(f"'{r.phrase}'" for r in marked)
        raise _Skip(marked[1].phrase, f"{listed} are each marked as the current method; mark one")
    if marked:
        return arms, phrases, marked[0].arm.label
    baseline = baseline_of(kinds[0])
    if baseline.label not in phrases:
        arms.append(baseline)
        phrases[baseline.label] = ADDED
    return arms, phrases, baseline.label


_METRIC_WORDS = {
    Category.STS: ("sts", "semantic textual similarity", "spearman", "similarity"),
    Category.RETRIEVAL: ("retr", "ndcg", "mrr", "map", "recall", "search"),
    Category.CLASSIFICATION: ("clas", "accuracy", "f1"),
    Category.CLUSTERING: ("clus", "v measure", "nmi"),
}


def _metrics(parts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The result categories the metrics name, in the tables' order, and a note per metric that
    is not measured here; no metric at all means every category."""
    if not parts:
        return CATEGORIES, ()
    chosen: set[str] = set()
    unknown = []
    for part in parts:
        words = normalise(part)
        match = next(
            (c for c, ws in _METRIC_WORDS.items() if any(words.startswith(w) for w in ws)), None
        )
        if match is None:
            unknown.append(part)
        else:
            chosen.add(match)
    if not chosen:
        listed = ", ".join(f"'{p}'" for p in unknown)
        raise _Skip(unknown[0], f"no metric it names is measured here ({listed}); use {CATEGORIES}")
    metrics = tuple(c for c in CATEGORIES if c in chosen)
    notes = tuple(
        f"metric '{p}' is not measured here; the table shows {', '.join(metrics)}" for p in unknown
    )
    return metrics, notes


def _slug(title: str) -> str:
    return "-".join(normalise(title).replace(" x ", " ").split()) or "section"
