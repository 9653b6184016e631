"""The report's plotly figures: learning curves per arm, parameter importance per category, cost.

Figures are returned as plotly objects (or a note saying why one cannot be drawn) so the HTML page
decides how to embed them; nothing here touches files or the network.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from plotly.subplots import make_subplots

from dashboards.ablation_table import AblationTable
from dashboards.costs import ArmCost
from dashboards.records import ReportedStudy, arm_of, category_score, seed_of
from dashboards.verdicts import BETTER, EQUIVALENT, WORSE, verdict_kind
from objectives.trial.results import CATEGORIES, OBJECTIVE

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MIN_TRIALS_FOR_IMPORTANCE = 4
LINE_STYLE = {TrialState.COMPLETE: "solid", TrialState.PRUNED: "dash", TrialState.FAIL: "dot"}
VERDICT_COLOR = {BETTER: "#1a7f37", WORSE: "#cf222e", EQUIVALENT: "#0969da"}


@dataclass(frozen=True)
class Figure:
    """A titled figure, or the reason it is missing (shown in its place)."""

    title: str
    figure: go.Figure | None
    note: str = ""


def arm_colors(arms: list[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def intermediate_curves(records: ReportedStudy) -> Figure:
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


def importance_figures(records: ReportedStudy) -> list[Figure]:
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
        values = {t.value if column == OBJECTIVE else category_score(t, column) for t in complete}
        if len(values) == 1:  # fANOVA has no variance to split (and raises)
            figures.append(Figure(title, None, f"every finished trial scored {column} the same"))
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
            _one_search_space(study, params),
            evaluator=evaluator,
            params=params,
            target=target,
            target_name=column,
        )


def _one_search_space(study: optuna.Study, params: list[str]) -> optuna.Study:
    """The finished trials in an in-memory study where each param has one distribution.

    A relaunch with more seeds records ``seed`` with a wider range (``suggest_int(0, n - 1)``), and
    optuna refuses importances over such "dynamic" spaces; the union of the ranges is the space
    the study actually sampled.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    union = {
        name: _union([t.distributions[name] for t in trials if name in t.distributions])
        for name in params
    }
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per figure
    try:
        copy = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial in trials:
        distributions = {
            **trial.distributions,
            **{n: union[n] for n in trial.distributions if n in union},
        }
        copy.add_trial(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=distributions,
                value=trial.value,
                user_attrs=trial.user_attrs,
            )
        )
    return copy


def _union(distributions: list[BaseDistribution]) -> BaseDistribution:
    first = distributions[0]
    if isinstance(first, CategoricalDistribution):
        choices = dict.fromkeys(c for d in distributions for c in d.choices)
        return CategoricalDistribution(list(choices))
    if isinstance(first, (IntDistribution, FloatDistribution)) and all(
        type(d) is type(first) for d in distributions
    ):
        low = min(d.low for d in distributions)
        high = max(d.high for d in distributions)
        return type(first)(low, high, log=first.log, step=first.step)
    return first


def forest_plot(table: AblationTable) -> Figure:
    """Per column, each arm's paired difference to the baseline with its 95% interval (in a race,
    its interval at its last look's alpha_k).

    The grey band is the ROPE; the marker colour is the verdict (green better, red worse, blue
    equivalent, grey inconclusive or pruned).
    """
    title = "Paired differences vs the baseline (95% intervals)"
    if table.sequential:
        title = (
            "Paired differences vs the baseline (intervals at each arm's last look, 1 - alpha_k)"
        )
    rows = [r for r in table.rows if not r.is_baseline]
    points = [
        (column, row.arm, row.cells[column])
        for column in table.columns
        for row in rows
        if row.cells[column].interval is not None
    ]
    if not points:
        return Figure(title, None, "no arm shares a finished seed with the baseline")
    fig = make_subplots(
        rows=1,
        cols=len(table.columns),
        shared_yaxes=True,
        subplot_titles=list(table.columns),
        horizontal_spacing=0.02,
    )
    for index, column in enumerate(table.columns, start=1):
        cells = [(arm, cell) for c, arm, cell in points if c == column]
        for arm, cell in cells:
            interval = cell.interval
            has_range = interval.low is not None and interval.high is not None
            fig.add_trace(
                go.Scatter(
                    x=[interval.mean],
                    y=[arm],
                    mode="markers",
                    marker={
                        "size": 10,
                        "color": VERDICT_COLOR.get(verdict_kind(cell.verdict), "#6e7781"),
                    },
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": [interval.high - interval.mean] if has_range else [0],
                        "arrayminus": [interval.mean - interval.low] if has_range else [0],
                        "thickness": 2,
                    },
                    showlegend=False,
                    hovertemplate=f"{arm} · {column}<br>Δ %{{x:+.4f}} · {cell.verdict}<extra></extra>",
                ),
                row=1,
                col=index,
            )
        fig.add_vrect(
            x0=-table.rope,
            x1=table.rope,
            fillcolor="#8c959f",
            opacity=0.2,
            line_width=0,
            row=1,
            col=index,
        )
        fig.add_vline(x=0, line_color="#57606a", line_width=1, row=1, col=index)
    fig.update_layout(title=title, height=140 + 50 * len(rows), margin={"t": 90, "b": 40, "l": 160})
    return Figure(title, fig)


def cost_figure(costs: list[ArmCost]) -> Figure:
    """Mean train / evaluation / load seconds per arm, stacked."""
    title = "Mean seconds per finished trial"
    rows = [c for c in costs if c.complete]
    if not rows:
        return Figure(title, None, "no finished trial recorded costs")
    fig = go.Figure()
    for label, seconds in (
        ("train", [c.costs.train_seconds for c in rows]),
        ("evaluate", [c.costs.eval_seconds for c in rows]),
        ("load", [c.costs.load_seconds for c in rows]),
    ):
        fig.add_trace(go.Bar(x=[c.arm for c in rows], y=[s or 0.0 for s in seconds], name=label))
    fig.update_layout(
        title=title, barmode="stack", yaxis_title="seconds", height=360, margin={"t": 50}
    )
    return Figure(title, fig)
