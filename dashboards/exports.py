"""The ablation table as Markdown (notes, PRs), CSV (spreadsheets), LaTeX (papers) and a terminal table.

All of them come from the same ``AblationTable`` so they never disagree with the HTML report or the
launcher's final table; every one carries the verdict words and the legend. CSV keeps raw numbers,
intervals and both raw and Holm-adjusted p-values.
"""

from __future__ import annotations

import csv
import io

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from dashboards.ablation_table import AblationTable, ArmRow, ColumnCell, build_table
from dashboards.records import load_records
from dashboards.verdicts import Rope

DIGITS = 4


def format_cell(cell: ColumnCell) -> str:
    """``0.7123 ± 0.0040  Δ -0.0011 [-0.0300, +0.0278] inconclusive``; ``—`` with no finished seed."""
    if cell.mean is None:
        return cell.verdict or "—"
    text = f"{cell.mean:.{DIGITS}f}"
    if cell.std is not None:
        text += f" ± {cell.std:.{DIGITS}f}"
    interval = cell.interval
    if interval is not None:
        text += f"  Δ {interval.mean:+.{DIGITS}f}"
        if interval.low is not None and interval.high is not None:
            text += f" [{interval.low:+.{DIGITS}f}, {interval.high:+.{DIGITS}f}]"
    if cell.verdict:
        text += f" {cell.verdict}"
    return text


def arm_label(row: ArmRow) -> str:
    return f"{row.arm} (baseline)" if row.is_baseline else row.arm


def seeds_text(row: ArmRow) -> str:
    """``2 of 3 (1 pruned, 1 failed)``: seeds behind the row's numbers, and what did not count."""
    shown = row.complete if row.is_baseline else row.shared
    text = f"{shown}" if shown == row.complete else f"{shown} of {row.complete}"
    counts = ((row.pruned, "pruned"), (row.failed, "failed"))
    extra = ", ".join(f"{n} {what}" for n, what in counts if n)
    return f"{text} ({extra})" if extra else text


REFERENCE_NOTE = "not fine-tuned; scored once, on the arms' texts; never in a verdict"


def reference_cells(table: AblationTable) -> list[str]:
    """The reference row's value per column (``—`` where it has none); [] without a reference."""
    if table.reference is None:
        return []
    values = [table.reference.values.get(column) for column in table.columns]
    return ["—" if v is None else f"{v:.{DIGITS}f}" for v in values]


def provenance_text(table: AblationTable) -> str:
    """``commit: ...; libraries: ...; data: ...``: what produced the table's trials."""
    return "; ".join(f"{label}: {text}" for label, text in table.provenance)


def to_markdown(table: AblationTable) -> str:
    header = ["arm", *table.columns, "seeds", "notes"]
    lines = [
        f"{provenance_text(table)}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(table.columns) + ["---:", "---"]) + "|",
    ]
    for row in table.rows:
        cells = []
        for column in table.columns:
            text = format_cell(row.cells[column])
            cells.append(f"**{text}**" if row.cells[column].best else text)
        name = f"**{arm_label(row)}**" if row.is_baseline else arm_label(row)
        notes = "; ".join(row.notes())
        lines.append("| " + " | ".join([name, *cells, seeds_text(row), notes]) + " |")
    if table.reference is not None:
        cells = [f"*{c}*" for c in reference_cells(table)]
        lines.append(f"| *{table.reference.label}* | {' | '.join(cells)} | — | {REFERENCE_NOTE} |")
    extra = "".join(f"\n\nWarning: {w}." for w in table.warnings)
    return "\n".join(lines) + f"\n\n{table.legend()}.{extra}\n"


def to_csv(table: AblationTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = ("mean", "std", "n", "delta", "low", "high", "p", "p_holm", "verdict")
    fields += ("p_tasks_descriptive", "tasks_test")
    header = ["arm", "baseline", "complete", "shared", "pruned", "failed", "learned", "dev_gain"]
    header += ["detectable", "reference"]
    header += [f"{column}_{k}" for column in table.columns for k in fields]
    writer.writerow(header)
    for row in table.rows:
        values: list[object] = [row.arm, row.is_baseline, row.complete, row.shared, row.pruned]
        values += [row.failed, row.learned, row.dev_gain, row.detectable, False]
        for column in table.columns:
            cell = row.cells[column]
            interval, test = cell.interval, cell.tasks_test
            values += [cell.mean, cell.std, cell.n, cell.delta]
            values += [interval.low, interval.high, interval.p] if interval else [None] * 3
            values += [cell.p_holm, cell.verdict]
            values += [test.p, test.label()] if test else [None] * 2
        writer.writerow(["" if v is None else v for v in values])
    if table.reference is not None:  # its mean per column; no seeds, intervals or verdicts
        values = [table.reference.label, False, *[None] * 7, True]
        for column in table.columns:
            values += [table.reference.values.get(column)] + [None] * (len(fields) - 1)
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def to_latex(table: AblationTable) -> str:
    """A ``booktabs`` table; the baseline row is underlined, best values bold."""
    columns = "l" + "c" * len(table.columns) + "l"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(["Arm", *(_tex(c) for c in table.columns), "Seeds"]) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = []
        for column in table.columns:
            cell = row.cells[column]
            text = _tex(format_cell(cell))
            cells.append(rf"\textbf{{{text}}}" if cell.best else text)
        name = rf"\underline{{{_tex(arm_label(row))}}}" if row.is_baseline else _tex(row.arm)
        lines.append(" & ".join([name, *cells, _tex(seeds_text(row))]) + r" \\")
    if table.reference is not None:
        cells = [rf"\textit{{{_tex(c)}}}" for c in reference_cells(table)]
        label = rf"\textit{{{_tex(table.reference.label)}}}"
        lines += [r"\midrule", " & ".join([label, *cells, "--"]) + r" \\"]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_tex(table.study)}: {_tex(table.legend())}.}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def console_table(study_name: str, url: str, rope: Rope | None = None) -> list[RenderableType]:
    """The launcher's final view of a study: the table (rich), its warnings and skipped arms."""
    records = load_records(study_name, url)
    table = build_table(records, rope=rope)
    # Escaped: rich reads "[...]" in a study name or the legend as markup and drops it.
    view = Table(title=escape(f"{study_name}: ablation table"), caption=escape(table.legend()))
    view.add_column("arm")
    for column in table.columns:
        view.add_column(column, justify="right")
    view.add_column("seeds", justify="right")
    view.add_column("notes")
    for row in table.rows:
        cells = [format_cell(row.cells[c]) for c in table.columns]
        view.add_row(arm_label(row), *cells, seeds_text(row), "; ".join(row.notes()))
    if table.reference is not None:
        view.add_row(
            table.reference.label, *reference_cells(table), "—", REFERENCE_NOTE, style="italic"
        )
    commit = dict(table.provenance).get("commit")
    shown: list[RenderableType] = [view]
    shown += [f"commit: {commit}"] if commit else []
    shown += [escape(f"warning: {w}") for w in table.warnings]
    shown += [escape(f"skipped arm {s['arm']!r}: {s['reason']}") for s in records.skipped_arms]
    return shown


_TEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "{": r"\{",
    "}": r"\}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "—": "--",
    "≥": r"$\geq$",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)
