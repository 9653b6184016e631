"""The ablation table as Markdown (notes, PRs), CSV (spreadsheets, further analysis), LaTeX (papers).

All three come from the same ``AblationTable`` so they never disagree with the HTML report; CSV
keeps raw numbers and p-values, the text formats show mean ± std with the significance markers.
"""

from __future__ import annotations

import csv
import io

from dashboards.ablation_table import AblationTable, ArmRow, Cell

DIGITS = 4


def format_cell(cell: Cell, alpha: float) -> str:
    """``0.7123 ± 0.0040*``; ``—`` for an arm with no finished seed."""
    if cell.mean is None:
        return "—"
    text = f"{cell.mean:.{DIGITS}f}"
    if cell.std is not None:
        text += f" ± {cell.std:.{DIGITS}f}"
    return text + cell.markers(alpha)


def arm_label(row: ArmRow) -> str:
    return f"{row.arm} (baseline)" if row.is_baseline else row.arm


def to_markdown(table: AblationTable) -> str:
    header = ["arm", *table.columns, "seeds"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in table.rows:
        cells = []
        for column in table.columns:
            text = format_cell(row.cells[column], table.alpha)
            cells.append(f"**{text}**" if row.cells[column].best else text)
        name = f"**{arm_label(row)}**" if row.is_baseline else arm_label(row)
        lines.append("| " + " | ".join([name, *cells, _seeds(row)]) + " |")
    return "\n".join(lines) + f"\n\n{table.legend()}.\n"


def to_csv(table: AblationTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["arm", "baseline", "complete", "pruned", "failed"]
    for column in table.columns:
        header += [f"{column}_{k}" for k in ("mean", "std", "n", "delta", "p_seeds")]
    header.append("average_p_tasks")
    writer.writerow(header)
    for row in table.rows:
        values: list[object] = [row.arm, row.is_baseline, row.complete, row.pruned, row.failed]
        for column in table.columns:
            cell = row.cells[column]
            p_seeds = cell.seeds_test.p if cell.seeds_test else None
            values += [cell.mean, cell.std, cell.n, cell.delta, p_seeds]
        tasks_test = row.cells[table.columns[-1]].tasks_test
        values.append(tasks_test.p if tasks_test else None)
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def to_latex(table: AblationTable) -> str:
    """A ``booktabs`` table; the baseline row is underlined, best values bold."""
    columns = "l" + "c" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(["Arm", *(_tex(c) for c in table.columns)]) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = []
        for column in table.columns:
            cell = row.cells[column]
            text = _tex(format_cell(cell, table.alpha))
            cells.append(rf"\textbf{{{text}}}" if cell.best else text)
        name = rf"\underline{{{_tex(arm_label(row))}}}" if row.is_baseline else _tex(row.arm)
        lines.append(" & ".join([name, *cells]) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_tex(table.study)}: {_tex(table.legend())}.}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def unfinished(row: ArmRow) -> str:
    """``1 pruned, 1 failed``: the arm's trials that did not count, or ``""``."""
    counts = ((row.pruned, "pruned"), (row.failed, "failed"))
    return ", ".join(f"{n} {what}" for n, what in counts if n)


def _seeds(row: ArmRow) -> str:
    extra = unfinished(row)
    return f"{row.complete} ({extra})" if extra else str(row.complete)


_TEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "{": r"\{",
    "}": r"\}",
    "†": r"$^\dagger$",
    "±": r"$\pm$",
    "—": "--",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)
