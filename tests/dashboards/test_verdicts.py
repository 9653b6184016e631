"""The verdict statistics: t intervals over few seeds, item variance, the paper's test, Holm, learning,
lost seeds and the ROPE per category."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dashboards.verdicts import (
    BASELINE_NOT_LEARNED,
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    LOST_SEEDS,
    PRUNED,
    THESE_ITEMS,
    WORSE,
    Interval,
    Rope,
    RopeError,
    detectable_effect,
    holm,
    learned,
    paired_interval,
    parse_rope,
    verdict,
    verdict_kind,
    wilcoxon_across_tasks,
)


def test_without_item_evidence_the_interval_is_the_paired_t_interval_over_seeds() -> None:
    diffs = [0.010, 0.030, 0.020]
    interval = paired_interval(diffs, None)
    low, high = stats.ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.p == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert not interval.item_level


def test_item_variance_all_seeds_share_widens_the_interval_and_keeps_the_seeds_df() -> None:
    diffs = [0.010, 0.030, 0.020]
    shared = np.random.default_rng(0).normal(0.0, 0.01, 200)  # the same item luck for every seed
    draws = np.stack([d + shared for d in diffs])
    seeds_only, both = paired_interval(diffs, None), paired_interval(diffs, draws)
    assert both.se > seeds_only.se
    # The seed variance has n - 1 df whatever the item part adds (module docstring: Welch's df
    # let the quantile fall from 12.7 to 2 when the 1-df seed variance came out small).
    assert both.df == seeds_only.df == 2
    assert both.se == pytest.approx(np.sqrt(np.var(diffs, ddof=1) / 3 + np.var(shared, ddof=1)))
    assert both.item_level


def test_equal_seed_differences_without_item_noise_have_no_p_value_and_no_decided_word() -> None:
    interval = paired_interval([0.02, 0.02], None)
    assert interval.p is None and interval.low is None and interval.se is None
    assert verdict(interval, None, None, 0.05) == INCONCLUSIVE
    identical = paired_interval([0.0, 0.0, 0.0], np.zeros((3, 50)), items=50)  # the same model
    assert identical.p is None and verdict(identical, None, None, 0.05) == INCONCLUSIVE


def test_item_noise_of_each_trial_alone_is_not_counted_twice() -> None:
    diffs = [0.010, 0.030, 0.020]
    rng = np.random.default_rng(0)
    draws = np.stack([d + rng.normal(0.0, 0.01, 2000) for d in diffs])  # independent per seed
    seeds_only, both = paired_interval(diffs, None), paired_interval(diffs, draws)
    assert both.se == pytest.approx(seeds_only.se, rel=0.05)


def test_each_variance_part_gets_its_own_quantile_added_in_quadrature() -> None:
    diffs = [0.010, 0.030, 0.020]
    shared = np.random.default_rng(0).normal(0.0, 0.01, 200)
    interval = paired_interval(diffs, np.stack([d + shared for d in diffs]), items=40)
    seed_part = np.var(diffs, ddof=1) / 3
    item_part = np.var(shared, ddof=1) * 40 / 39  # the bootstrap's (m - 1)/m undone
    half = np.sqrt(stats.t.ppf(0.975, 2) ** 2 * seed_part + stats.t.ppf(0.975, 39) ** 2 * item_part)
    assert interval.high - interval.mean == pytest.approx(half)
    # The p-value is the level at which that rule just rejects.
    assert interval.threshold(interval.p) == pytest.approx(abs(interval.mean))


def test_one_shared_seed_gives_no_interval_and_no_verdict() -> None:
    interval = paired_interval([0.05], None)
    assert interval.low is None and verdict(interval, None, None, 0.05) == INCONCLUSIVE


def _items(diffs: list[float]) -> Interval:
    """An interval whose column had item evidence for every task (no shared item noise here)."""
    return paired_interval(diffs, np.tile(np.asarray(diffs)[:, None], (1, 50)), items=50)


UP, DOWN = [0.050, 0.052, 0.049], [-0.050, -0.052, -0.049]
INSIDE = [0.001, -0.001, 0.0005]


def test_verdict_words_follow_the_adjusted_difference_and_equivalence_p_values() -> None:
    assert verdict(_items(INSIDE), 0.9, 0.01, 0.05) == EQUIVALENT
    assert verdict(_items(INSIDE), 0.9, 0.2, 0.05) == INCONCLUSIVE  # equivalence not shown
    assert verdict(_items(UP), 0.001, 1.0, 0.05) == BETTER
    assert verdict(_items(UP), 0.2, 1.0, 0.05) == INCONCLUSIVE  # not significant after Holm
    assert verdict(_items(DOWN), 0.001, 1.0, 0.05) == WORSE
    # Without item evidence the claim covers these test items only, and the word says so.
    assert verdict(paired_interval(UP, None), 0.001, 1.0, 0.05) == f"{BETTER} ({THESE_ITEMS})"


def test_equivalence_is_two_one_sided_tests_against_the_rope() -> None:
    close = _items(INSIDE)
    assert close.equivalence_p(0.005) < 0.05 and close.equivalence_p(0.0005) > 0.2
    far = _items(UP)
    assert far.equivalence_p(0.005) == 1.0


def test_no_verdict_against_a_baseline_not_shown_to_learn_and_an_arm_alone_is_flagged() -> None:
    up, down, inside = _items(UP), _items(DOWN), _items(INSIDE)
    assert verdict(up, 0.001, 1.0, 0.05, baseline_learned=False) == BASELINE_NOT_LEARNED
    assert verdict(inside, 0.9, 0.01, 0.05, baseline_learned=False) == BASELINE_NOT_LEARNED
    assert BASELINE_NOT_LEARNED == "inconclusive (baseline not shown to learn)"
    # An arm that alone was not shown to learn keeps its real "worse" (the part may be
    # essential), flagged.
    flagged = verdict(down, 0.001, 1.0, 0.05, arm_learned=False)
    assert flagged == "worse (arm not shown to learn)" and verdict_kind(flagged) == WORSE
    assert verdict(inside, 0.9, 0.01, 0.05, arm_learned=False) == (
        "equivalent (arm not shown to learn)"
    )


def test_an_arm_with_lost_seeds_is_never_better_or_equivalent_on_its_survivors() -> None:
    up, down, inside = _items(UP), _items(DOWN), _items(INSIDE)
    assert verdict(up, 0.001, 1.0, 0.05, arm_lost=True) == LOST_SEEDS
    assert verdict(up, 0.001, 1.0, 0.05, arm_lost=True, arm_pruned=True) == PRUNED
    assert verdict(inside, 0.9, 0.01, 0.05, arm_lost=True) == LOST_SEEDS
    # The survivors are biased upward, so their "worse" stands.
    assert verdict(down, 0.001, 1.0, 0.05, arm_lost=True, arm_pruned=True) == WORSE
    # A baseline's lost seeds bias it upward: the arm's "worse" and "equivalent" are withheld.
    assert verdict(down, 0.001, 1.0, 0.05, baseline_lost=True) == LOST_SEEDS
    assert verdict(up, 0.001, 1.0, 0.05, baseline_lost=True) == BETTER


def test_the_rope_is_read_per_category_and_bad_values_name_the_fix() -> None:
    rope = parse_rope("0.01,Retrieval=0.02")
    assert rope == Rope(0.01, {"Retrieval": 0.02})
    categories = {"SciFact": "Retrieval", "SICK-R": "STS"}
    assert rope.for_column("SciFact", categories) == 0.02
    assert rope.for_column("Retrieval", categories) == 0.02
    assert rope.for_column("SICK-R", categories) == 0.01
    assert rope.for_column("average", categories) == 0.01
    assert parse_rope("0.003") == Rope(0.003)
    with pytest.raises(RopeError, match="unknown category 'Speed'"):
        parse_rope("Speed=0.1")
    with pytest.raises(RopeError, match=">= 0"):
        parse_rope("-0.1")


def test_wilcoxon_is_na_where_k_tasks_cannot_reach_alpha_and_names_the_smallest_p() -> None:
    few = wilcoxon_across_tasks([0.1, 0.2, 0.3])
    assert few.p is None and few.min_p == pytest.approx(0.25) and few.label() == "n/a (3 tasks)"
    seven = wilcoxon_across_tasks([-0.01, -0.02, -0.03, -0.04, -0.05, -0.06, -0.07])
    assert seven.p == pytest.approx(2 / 2**7)


def test_holm_adjusts_the_smallest_p_by_the_number_of_tests() -> None:
    raw = [0.01, 0.04, 0.03]
    adjusted = holm(raw)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])  # 3 x 0.01, then 2 x 0.03, monotone
    assert all(a >= p for a, p in zip(adjusted, raw, strict=True))


def test_the_detectable_effect_shrinks_with_more_seeds() -> None:
    rng = np.random.default_rng(1)
    two = paired_interval(rng.normal(0, 0.01, 2), None)
    five = paired_interval(rng.normal(0, 0.01, 5), None)
    assert detectable_effect(two, 5) > detectable_effect(five, 5) > 0


def test_learning_is_a_one_sided_test_of_the_per_seed_gains() -> None:
    assert learned([0.30, 0.32, 0.31], [0.305, 0.33, 0.31]) is False  # gains within their noise
    assert learned([0.30, 0.32, 0.31], [0.45, 0.47, 0.44]) is True
    # A deterministic step 0 no longer collapses the test to the ROPE: the gains' own spread counts.
    assert learned([0.30, 0.30], [0.31, 0.36]) is False  # gains 0.01, 0.06: t_1 cannot tell
    assert learned([0.30, 0.30, 0.30], [0.34, 0.35, 0.36]) is True
    assert learned([0.30], [0.60]) is None  # one seed cannot be tested


def test_the_calibration_benchmark_offline_without_tasks_stops_in_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "verdicts.py"
    spec = importlib.util.spec_from_file_location("verdicts_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # its dataclasses look themselves up
    spec.loader.exec_module(benchmark)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ABLATION_TASKS_DIR", raising=False)
    assert benchmark.main(["--preset", "smoke"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # stopped before measuring anything
    assert len(captured.err.strip().splitlines()) == 1
    assert "--tasks-dir" in captured.err and "ABLATION_TASKS_DIR" in captured.err
