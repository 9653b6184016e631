"""The verdict statistics: t intervals over few seeds, item variance, the paper's test, Holm, learning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dashboards.verdicts import (
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    NOT_LEARNED,
    WORSE,
    detectable_effect,
    holm,
    learned,
    paired_interval,
    verdict,
    wilcoxon_across_tasks,
)


def test_without_item_evidence_the_interval_is_the_paired_t_interval_over_seeds() -> None:
    diffs = [0.010, 0.030, 0.020]
    interval = paired_interval(diffs, None)
    low, high = stats.ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.p == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert not interval.item_level


def test_item_variance_all_seeds_share_widens_the_interval_and_raises_its_df() -> None:
    diffs = [0.010, 0.030, 0.020]
    shared = np.random.default_rng(0).normal(0.0, 0.01, 200)  # the same item luck for every seed
    draws = np.stack([d + shared for d in diffs])
    seeds_only, both = paired_interval(diffs, None), paired_interval(diffs, draws)
    assert both.se > seeds_only.se and both.df > seeds_only.df == 2
    assert both.se == pytest.approx(np.sqrt(np.var(diffs, ddof=1) / 3 + np.var(shared, ddof=1)))
    assert both.item_level


def test_item_noise_of_each_trial_alone_is_not_counted_twice() -> None:
    diffs = [0.010, 0.030, 0.020]
    rng = np.random.default_rng(0)
    draws = np.stack([d + rng.normal(0.0, 0.01, 2000) for d in diffs])  # independent per seed
    seeds_only, both = paired_interval(diffs, None), paired_interval(diffs, draws)
    assert both.se == pytest.approx(seeds_only.se, rel=0.05)


def test_one_shared_seed_gives_no_interval_and_no_verdict() -> None:
    interval = paired_interval([0.05], None)
    assert interval.low is None and verdict(interval, None, 0.005, 0.05) == INCONCLUSIVE


def test_verdict_words_follow_the_interval_the_rope_and_the_adjusted_p() -> None:
    inside = paired_interval([0.001, -0.001, 0.0005], None)
    assert verdict(inside, 0.9, 0.005, 0.05) == EQUIVALENT
    up = paired_interval([0.050, 0.052, 0.049], None)
    assert verdict(up, 0.001, 0.005, 0.05) == BETTER
    assert verdict(up, 0.2, 0.005, 0.05) == INCONCLUSIVE  # not significant after Holm
    down = paired_interval([-0.050, -0.052, -0.049], None)
    assert verdict(down, 0.001, 0.005, 0.05) == WORSE


def test_no_verdict_is_decided_when_the_arm_or_its_baseline_did_not_learn() -> None:
    up = paired_interval([0.050, 0.052, 0.049], None)
    inside = paired_interval([0.001, -0.001, 0.0005], None)
    assert verdict(up, 0.001, 0.005, 0.05, both_learned=False) == NOT_LEARNED
    assert verdict(inside, 0.9, 0.005, 0.05, both_learned=False) == NOT_LEARNED
    assert NOT_LEARNED == "inconclusive (did not learn)"


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


def test_an_arm_whose_dev_signal_stays_at_its_step_0_level_did_not_learn() -> None:
    assert not learned([0.30, 0.32, 0.31], [0.305, 0.33, 0.31])
    assert learned([0.30, 0.32, 0.31], [0.45, 0.47, 0.44])


def test_the_calibration_benchmark_offline_without_tasks_stops_in_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "verdicts.py"
    spec = importlib.util.spec_from_file_location("verdicts_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ABLATION_TASKS_DIR", raising=False)
    assert benchmark.main(["--preset", "smoke"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # stopped before measuring anything
    assert len(captured.err.strip().splitlines()) == 1
    assert "--tasks-dir" in captured.err and "ABLATION_TASKS_DIR" in captured.err
