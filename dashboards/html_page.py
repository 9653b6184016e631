"""Assemble the report into one self-contained HTML file: inline CSS, plotly.js embedded once.

The file must open on an air-gapped laptop or as a CI artifact, so nothing is loaded from a CDN.
All text from the study (arm labels, errors) is escaped: study data is not trusted markup.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from html import escape

import plotly.io as pio
import plotly.offline
from optuna.trial import FrozenTrial, TrialState

from dashboards.ablation_table import AblationTable, ColumnCell
from dashboards.costs import ArmCost, PruningSavings
from dashboards.exports import (
    REFERENCE_NOTE,
    arm_label,
    format_cell,
    reference_cells,
    seeds_text,
)
from dashboards.figures import Figure
from dashboards.records import ReportedStudy, arm_of, fail_reason, seed_of
from dashboards.verdicts import verdict_kind
from storage.study_records import Pruned, read_pruned, retried_from

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 40px;
       color: #1b1f24; background: #fff; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #d0d7de; }
.meta { color: #57606a; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.text th, table.text td { text-align: left; }
thead th { background: #f6f8fa; }
tr.baseline td { background: #fff8c5; }
tr.reference td { color: #57606a; font-style: italic; border-top: 2px solid #d0d7de; }
td.best { font-weight: 700; background: #dafbe1; }
.verdict-better { color: #1a7f37; font-weight: 600; } .verdict-worse { color: #cf222e; font-weight: 600; }
.verdict-equivalent { color: #0969da; } .verdict-other { color: #57606a; }
.warning { color: #9a6700; font-weight: 600; }
.delta { color: #57606a; font-size: 0.85em; }
.note { color: #57606a; font-style: italic; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 8px; }
"""


@dataclass(frozen=True)
class ReportContent:
    records: ReportedStudy
    table: AblationTable
    forest: Figure
    curves: Figure
    importances: list[Figure]
    costs: list[ArmCost]
    cost_chart: Figure
    savings: PruningSavings


def render(content: ReportContent) -> str:
    records = content.records
    sections = [
        _header(records, content.table),
        _section(
            "Ablation table",
            _table(content.table) + _figure(content.forest) + _significance(content.table),
        ),
        _section("Learning curves", _figure(content.curves)),
        _section(
            "Parameter importance",
            '<p class="note">fANOVA importance (optuna, fixed seed) of each parameter for each '
            "column, over finished trials; a large share for seed means the arms differ less "
            "than seed-to-seed noise.</p>"
            '<div class="grid">' + "".join(_figure(f) for f in content.importances) + "</div>",
        ),
        _section(
            "Cost per arm",
            _cost_table(content.costs) + _figure(content.cost_chart) + _savings(content.savings),
        ),
        _section("Skipped arms", _skipped(records)),
        _section("Failed trials", _failed(records)),
        _section("Pruned trials", _pruned(records)),
    ]
    title = escape(f"Ablation report: {records.name}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head>"
        f"<body><h1>{title}</h1>{''.join(sections)}</body></html>\n"
    )


def _section(title: str, body: str) -> str:
    slug = title.lower().replace(" ", "-")
    return f'<section id="{slug}"><h2>{escape(title)}</h2>{body}</section>'


def _header(records: ReportedStudy, table: AblationTable) -> str:
    plan = records.plan
    states = Counter(t.state.name.lower() for t in records.trials)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials"
    facts = [
        ("plan", plan.get("description") or plan.get("name") or "(no plan recorded)"),
        ("ablated", f"{plan.get('ablated', '?')} ({plan.get('action', '?')})"),
        ("baseline", records.baseline or "(none)"),
        ("preset", records.preset or "?"),
        ("backbone", records.backbone or "?"),
        ("trials", counts),
        ("storage", records.storage_label),
        *table.provenance,
        ("generated", dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
    ]
    items = "".join(f"<li><b>{escape(k)}:</b> {escape(str(v))}</li>" for k, v in facts)
    running = states.get("running", 0) + states.get("waiting", 0)
    warning = (
        f'<p class="note">The study is still in progress ({running} trials running or waiting); '
        "the table covers what has finished.</p>"
        if running
        else ""
    )
    return f'<ul class="meta">{items}</ul>{warning}'


def _table(table: AblationTable) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ("arm", *table.columns, "seeds", "notes"))
    rows = []
    for row in table.rows:
        cells = "".join(_cell(row.cells[c]) for c in table.columns)
        css = ' class="baseline"' if row.is_baseline else ""
        label = escape(arm_label(row))
        notes = escape("; ".join(row.notes()))
        rows.append(
            f"<tr{css}><td>{label}</td>{cells}<td>{escape(seeds_text(row))}</td>"
            f'<td class="note">{notes}</td></tr>'
        )
    if table.reference is not None:
        cells = "".join(f"<td>{escape(c)}</td>" for c in reference_cells(table))
        rows.append(
            f'<tr class="reference"><td>{escape(table.reference.label)}</td>{cells}<td>—</td>'
            f'<td class="note">{escape(REFERENCE_NOTE)}</td></tr>'
        )
    warnings = "".join(f'<p class="warning">Warning: {escape(w)}.</p>' for w in table.warnings)
    return (
        f'<table id="ablation-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{warnings}"
        f'<p class="note">{escape(table.legend())}.</p>'
    )


def _cell(cell: ColumnCell) -> str:
    text = escape(format_cell(cell))
    if cell.verdict:
        kind = verdict_kind(cell.verdict) or "other"
        word = escape(cell.verdict)
        text = text.removesuffix(word) + f'<span class="verdict-{kind}">{word}</span>'
    css = ' class="best"' if cell.best else ""
    return f"<td{css}>{text}</td>"


def _significance(table: AblationTable) -> str:
    rows = []
    for row in table.rows:
        for column in table.columns:
            cell = row.cells[column]
            if cell.interval is not None:
                basis = "seeds + items" if cell.interval.item_level else "seeds only"
                test_name = f"paired interval ({basis})"
                p, p_holm = _p(cell.interval.p), _p(cell.p_holm)
                n = str(cell.interval.n_seeds)
                rows.append([row.arm, column, test_name, n, p, p_holm, cell.verdict or ""])
            test = cell.tasks_test
            if test is not None:
                p = test.label() if test.p is None else _p(test.p)
                note = f"smallest reachable p {test.min_p:.3g}" if test.p is None else ""
                name = "Wilcoxon signed-rank across tasks (descriptive)"
                rows.append([row.arm, column, name, str(test.n), p, "not adjusted", note])
    if not rows:
        base = next((r for r in table.rows if r.is_baseline), None)
        why = (
            "no other arm has a finished trial"
            if base is not None and base.complete
            else "the baseline has no finished trial"
        )
        return f'<p class="note">No comparison with the baseline: {why}.</p>'
    holm = (
        "Each arm's p is that of its last look of the race; its words are Holm-adjusted within "
        "that look at the look's alpha_k (the legend names the rule), and no p-value is adjusted "
        "over all seeds: after optional stopping it would not be one."
        if table.sequential
        else f"Holm adjusts over all {table.tests} interval tests of the study."
    )
    return (
        "<h3>Tests vs the baseline</h3>"
        f'<p class="note">Two-sided. {holm} The Wilcoxon test (as in the paper) runs across the '
        "tasks of a column and is "
        "descriptive only: the tasks share the same few models, so they are not independent "
        "samples, and no verdict uses it; with k tasks its p-value is at least 2 / 2^k, so it is "
        "n/a where that cannot reach alpha.</p>"
        + _html_table(
            "significance",
            ["arm", "column", "test", "n", "p", "p (Holm)", "verdict / note"],
            rows,
        )
    )


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.4f}"


def _html_table(table_id: str, headers: list[str], rows: list[list[str]], text: bool = True) -> str:
    """A table of plain strings (escaped here); ``text`` tables are left-aligned."""
    css = ' class="text"' if text else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table id="{table_id}"{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _figure(figure: Figure) -> str:
    if figure.figure is None:
        return f'<p class="note">{escape(figure.title)}: {escape(figure.note)}.</p>'
    return pio.to_html(
        figure.figure,
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
    )


def _cost_table(costs: list[ArmCost]) -> str:
    def fmt(value: float | None, digits: int = 1) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    headers = ["arm", "finished", "train s", "eval s", "load s", "peak MB"]
    headers += ["params total", "trainable", "head"]
    rows = [
        [c.arm, str(c.complete)]
        + [fmt(c.costs.train_seconds), fmt(c.costs.eval_seconds), fmt(c.costs.load_seconds)]
        + [fmt(c.costs.peak_memory_mb)]
        + [fmt(c.params[k], 0) for k in ("total", "trainable", "head")]
        for c in costs
    ]
    return _html_table("costs", headers, rows, text=False)


def _savings(savings: PruningSavings) -> str:
    if not savings.pruned:
        return '<p id="pruning-savings">No trial was pruned, so pruning saved nothing.</p>'
    steps = (
        f"{savings.steps_saved} of {savings.pruned * savings.full_steps} training steps"
        if savings.full_steps
        else "an unknown number of steps (no finished trial to compare with)"
    )
    return (
        f'<p id="pruning-savings">Pruning stopped {_trials(savings.pruned)} early, saving {steps} '
        f"and about {savings.seconds_saved:,.0f} s of wall-clock time "
        f"({savings.fraction_saved:.0%} of what the study would have used without pruning; "
        f"pruned trials still used {savings.seconds_spent:,.0f} s). Estimate: a pruned trial "
        "would have taken as long as the mean finished trial.</p>"
    )


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _skipped(records: ReportedStudy) -> str:
    if not records.skipped_arms:
        return '<p class="note">No arm was skipped.</p>'
    rows = [
        [str(s.get("arm", "?")), str(s.get("reason", "no reason recorded"))]
        for s in records.skipped_arms
    ]
    return _html_table("skipped-arms", ["arm", "reason"], rows)


def _failed(records: ReportedStudy) -> str:
    failed = records.by_state(TrialState.FAIL)
    if not failed:
        return '<p class="note">No trial failed.</p>'
    retried = {retried_from(t): t.number for t in records.trials if retried_from(t) is not None}
    rows = [
        [
            *_trial_cells(t),
            fail_reason(t),
            f"trial {retried[t.number]}" if t.number in retried else "—",
        ]
        for t in failed
    ]
    return _html_table("failed-trials", ["trial", "arm", "seed", "reason", "retried as"], rows)


def _pruned(records: ReportedStudy) -> str:
    pruned = records.by_state(TrialState.PRUNED)
    if not pruned:
        return '<p class="note">No trial was pruned.</p>'
    rows = [
        [*_trial_cells(t), *_last_report(t), _gap((read_pruned(t) or Pruned(None, None)).gap)]
        for t in pruned
    ]
    headers = ["trial", "arm", "seed", "stopped at step", "last score", "dev gap to reference"]
    return _html_table("pruned-trials", headers, rows)


def _gap(gap: float | None) -> str:
    return "—" if gap is None else f"{gap:+.4f}"


def _trial_cells(trial: FrozenTrial) -> list[str]:
    return [str(trial.number), arm_of(trial) or "?", str(seed_of(trial))]


def _last_report(trial: FrozenTrial) -> list[str]:
    if not trial.intermediate_values:
        return ["—", "—"]
    step = max(trial.intermediate_values)
    return [str(step), f"{trial.intermediate_values[step]:.4f}"]
