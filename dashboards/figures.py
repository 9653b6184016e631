"""The report's plotly figures: learning curves per arm, parameter importance per category, cost.

Figures are returned as plotly objects (or a note saying why one cannot be drawn) so the HTML page
decides how to embed them; nothing here touches files or the network.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from dashboards.costs import ArmCost
from dashboards.records import StudyRecords, arm_of, category_score, seed_of
from objectives.results import CATEGORIES, OBJECTIVE

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MIN_TRIALS_FOR_IMPORTANCE = 4
LINE_STYLE = {TrialState.COMPLETE: "solid", TrialState.PRUNED: "dash", TrialState.FAIL: "dot"}


@dataclass(frozen=True)
class Figure:
    """A titled figure, or the reason it is missing (shown in its place)."""

    title: str
    figure: go.Figure | None
    note: str = ""


def arm_colors(arms: list[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def intermediate_curves(records: StudyRecords) -> Figure:
    """One line per trial, coloured by arm; pruned trials dashed and ending in a large X."""
    title = "Intermediate held-out score by training step"
    colors = arm_colors(records.arms)
    fig = go.Figure()
    shown: set[tuple[str, TrialState]] = set()
    for trial in records.trials:
        if not trial.intermediate_values or trial.state not in LINE_STYLE:
            continue
        arm = arm_of(trial) or "?"
        steps = sorted(trial.intermediate_values)
        scores = [trial.intermediate_values[s] for s in steps]
        state = trial.state.name.lower()
        symbols = ["circle"] * len(steps)
        sizes = [6] * len(steps)
        if trial.state != TrialState.COMPLETE:
            symbols[-1] = "x"
            sizes[-1] = 14
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=scores,
                mode="lines+markers",
                name=f"{arm} ({state})",
                legendgroup=f"{arm}-{state}",
                showlegend=(arm, trial.state) not in shown,
                line={"color": colors.get(arm, "#7f7f7f"), "dash": LINE_STYLE[trial.state]},
                marker={"symbol": symbols, "size": sizes},
                hovertemplate=(
                    f"trial {trial.number} · {arm} · seed {seed_of(trial)} · {state}"
                    "<br>step %{x}: %{y:.4f}<extra></extra>"
                ),
            )
        )
        shown.add((arm, trial.state))
    if not fig.data:
        return Figure(title, None, "no trial reported intermediate values yet")
    fig.update_layout(
        title=title,
        xaxis_title="training step",
        yaxis_title="held-out score",
        height=460,
        margin={"t": 60, "b": 50},
        legend={"title": "arm (state) — dashed/X = pruned"},
    )
    return Figure(title, fig)


def importance_figures(records: StudyRecords) -> list[Figure]:
    """optuna's ``plot_param_importances`` for each category and the average, where computable.

    Importance needs at least two parameters that vary across finished trials (with a grid over
    arm x seed, that means >= 2 seeds: then it says whether the arm matters more than the seed) and
    a handful of finished trials; otherwise one note explains what is missing.
    """
    complete = records.complete()
    varying = sorted(
        name
        for name in {p for t in complete for p in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    )
    note = ""
    if not varying:
        note = f"no parameter varies across the {len(complete)} finished trials"
    elif len(varying) < 2:
        note = (
            f"only {varying[0]} varies across finished trials, so its importance is trivially "
            "100%; run >= 2 seeds (or tune extra parameters) to compare"
        )
    elif len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        note = (
            f"needs >= {MIN_TRIALS_FOR_IMPORTANCE} finished trials, the study has {len(complete)}"
        )
    if note:
        return [Figure("Parameter importance", None, note)]
    figures = []
    for column in (*CATEGORIES, OBJECTIVE):
        title = f"Parameter importance for {column}"
        if column != OBJECTIVE and any(category_score(t, column) is None for t in complete):
            figures.append(Figure(title, None, f"not every finished trial scored {column}"))
            continue
        fig = _importance(records.study, column, varying)
        fig.update_layout(title={"text": column, "x": 0.02}, height=320, margin={"t": 50, "b": 40})
        figures.append(Figure(title, fig))
    return figures


def _importance(study: optuna.Study, column: str, params: list[str]) -> go.Figure:
    def target(trial: optuna.trial.FrozenTrial) -> float:
        return trial.value if column == OBJECTIVE else category_score(trial, column)

    # A fixed seed keeps fANOVA's random forest, and so the report, reproducible.
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.visualization.plot_param_importances(
            study, evaluator=evaluator, params=params, target=target, target_name=column
        )


def cost_figure(costs: list[ArmCost]) -> Figure:
    """Mean train / evaluation / load seconds per arm, stacked."""
    title = "Mean seconds per finished trial"
    rows = [c for c in costs if c.complete]
    if not rows:
        return Figure(title, None, "no finished trial recorded costs")
    fig = go.Figure()
    for key, label in (
        ("train_seconds", "train"),
        ("eval_seconds", "evaluate"),
        ("load_seconds", "load"),
    ):
        fig.add_trace(
            go.Bar(x=[c.arm for c in rows], y=[c.costs.get(key) or 0.0 for c in rows], name=label)
        )
    fig.update_layout(
        title=title, barmode="stack", yaxis_title="seconds", height=360, margin={"t": 50}
    )
    return Figure(title, fig)
