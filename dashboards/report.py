"""``python -m dashboards.report --study NAME --out report.html``: one offline HTML ablation report.

Reads the study from the same storage the launcher wrote (``--storage``, else ``$ABLATION_STORAGE``,
else ``sqlite:///studies.db``) and writes the paper-style ablation table with paired intervals and
verdicts (``--rope``, ``--alpha``) and their forest plot, learning curves with pruned trials marked,
parameter importance per category, cost per arm and pruning savings, skipped arms and failed
trials; optionally the table as Markdown, CSV and LaTeX.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dashboards.ablation_table import build_table
from dashboards.costs import arm_costs, pruning_savings
from dashboards.exports import to_csv, to_latex, to_markdown
from dashboards.figures import cost_figure, forest_plot, importance_figures, intermediate_curves
from dashboards.html_page import ReportContent, render
from dashboards.records import ReportedStudy, load_records
from dashboards.verdicts import ALPHA, ROPE, Rope, rope_argument
from objectives.cli import Parser, one_line_errors
from storage.cli import add_storage_argument


def build_report(
    records: ReportedStudy, alpha: float = ALPHA, rope: Rope | float | None = None
) -> ReportContent:
    costs = arm_costs(records)
    table = build_table(records, alpha=alpha, rope=rope)
    return ReportContent(
        records=records,
        table=table,
        forest=forest_plot(table),
        curves=intermediate_curves(records),
        importances=importance_figures(records),
        costs=costs,
        cost_chart=cost_figure(costs),
        savings=pruning_savings(records),
    )


def write_report(
    study: str,
    out: Path,
    storage: str | None = None,
    exports: dict[str, Path] | None = None,
    alpha: float = ALPHA,
    rope: Rope | float | None = None,
) -> ReportContent:
    """Write the HTML report (and any ``{"markdown"|"csv"|"latex": path}`` exports)."""
    content = build_report(load_records(study, storage), alpha=alpha, rope=rope)
    _write(out, render(content))
    writers = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex}
    for kind, path in (exports or {}).items():
        _write(path, writers[kind](content.table))
    return content


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size / 1024:,.0f} KB)", flush=True)


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m dashboards.report", description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="study name, e.g. layer-weights")
    add_storage_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file to write")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV here")
    parser.add_argument("--latex", type=Path, help="also write the table as a LaTeX table here")
    parser.add_argument(
        "--export-dir", type=Path, help="write NAME.md, NAME.csv and NAME.tex into this folder"
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level")
    parser.add_argument(
        "--rope",
        type=rope_argument,
        default=Rope(),
        help=f"differences inside +-ROPE count as equivalent: one value (default {ROPE}) and/or "
        "one per category, e.g. 0.005,Retrieval=0.01",
    )
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must be between 0 and 1, got {args.alpha}")
    exports = {k: getattr(args, k) for k in ("markdown", "csv", "latex") if getattr(args, k)}
    if args.export_dir:
        for kind, suffix in (("markdown", ".md"), ("csv", ".csv"), ("latex", ".tex")):
            exports.setdefault(kind, args.export_dir / f"{args.study}{suffix}")
    print(f"reading study '{args.study}'", flush=True)
    write_report(args.study, args.out, args.storage, exports, alpha=args.alpha, rope=args.rope)
    return 0


if __name__ == "__main__":
    sys.exit(main())
