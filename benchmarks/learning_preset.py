"""Does a preset train its arms, and what does it cost? One trial per arm, side by side as a study
runs them, with the dev learning curve of each and the untrained reference.

For each chosen arm of a shipped study (default: ``pooling-attention``, model4 and model5, on the
``cpu-learn`` preset), one full ``run_trial`` with the config the launcher builds
(``search.arms.resolve_arms``), ``--parallel`` trials at a time in separate processes (as Ray
runs two one-thread trials on 2 cores). Printed per arm: seconds per training step, load / train /
eval / whole-trial seconds, the process's CPU seconds, peak memory, the dev composite (the
intermediate value a study stores: mean of the category proxies of ``objectives.training.dev_signal``) at
every report, and the test scores per task. Then the reference row every study shows (the
untrained backbone with mean pooling on the same texts, ``objectives.evaluation.reference``) and the load
average seen while it ran (min / max of the 1-minute figure, sampled every 10 s): on a shared
machine seconds depend on the load, CPU seconds much less.

    python benchmarks/learning_preset.py                                   # about 10 min
    python benchmarks/learning_preset.py --set train.eval_every=4          # a finer curve
    python benchmarks/learning_preset.py --preset cpu-decoder --arms model5 --seed 1

``--set`` takes dotted overrides (as the CLI). Needs the tasks directory (``--tasks-dir`` or
``ABLATION_TASKS_DIR``, else ../shared/data).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from objectives.config.trial_config import TrialConfig  # noqa: E402
from search.arms import Choices, resolve_arms  # noqa: E402
from search.plans import get_plan  # noqa: E402


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def one_trial(label: str, config: TrialConfig) -> dict[str, Any]:
    """Run one trial in this (worker) process; its costs, dev curve and scores as plain data."""
    from objectives.training.dev_signal import composite
    from objectives.trial.run import run_trial

    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    def report(step: int, proxies: dict[str, float]) -> None:
        curve.append((step, composite(proxies, list(proxies)), time.perf_counter() - start))
        print(f"  {label} step {step}: dev {curve[-1][1]:.3f} at {curve[-1][2]:.0f} s", flush=True)

    cpu = time.process_time()
    result = run_trial(config, report, progress=False)
    return {
        "label": label,
        "wall": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "costs": asdict(result.costs),
        "steps": config.train.steps,
        "curve": curve,
        "tasks": result.task_scores,
        "categories": result.category_scores,
        "average": result.average,
    }


def one_reference(config: TrialConfig) -> dict[str, Any]:
    """The study's reference row, scored in this (worker) process."""
    from objectives.evaluation.reference import score_reference

    cpu = time.process_time()
    ref = score_reference(config)
    return {
        "label": ref.label,
        "wall": ref.seconds,
        "cpu": time.process_time() - cpu,
        "tasks": ref.task_scores,
        "categories": ref.category_scores,
        "average": ref.objective,
    }


class LoadWatch:
    """The 1-minute load average, sampled every ``every`` seconds in a thread."""

    def __init__(self, every: float = 10.0) -> None:
        self.seen = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.seen.append(os.getloadavg()[0])

    def text(self) -> str:
        self._stop.set()
        return f"{min(self.seen):.1f}-{max(self.seen):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu-learn")
    parser.add_argument("--study", default="pooling-attention")
    parser.add_argument("--arms", type=_csv, default=["model4", "model5"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=2, help="trials at once (processes)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference row")
    parser.add_argument("--tasks-dir", default=None)
    parser.add_argument("--set", action="append", default=[], help="dotted override, k=v")
    args = parser.parse_args()
    tasks_dir = str(
        args.tasks_dir or os.environ.get("ABLATION_TASKS_DIR") or REPO.parent / "shared" / "data"
    )
    changes = tuple(tuple(item.split("=", 1)) for item in args.set)
    settings = Choices(preset=args.preset, tasks_dir=tasks_dir, overrides=changes)
    arms = resolve_arms(get_plan(args.study), settings)
    configs = {label: replace(arms.configs[label], seed=args.seed) for label in args.arms}
    base = arms.base_config
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, preset {args.preset}, study {args.study}, "
        f"seed {args.seed}: backbone {base.model.backbone}, {base.train.steps} steps x "
        f"{base.train.batch_size} pairs, lr {base.train.lr}, max_length {base.model.max_length}, "
        f"{base.eval.max_texts} texts per task of {', '.join(base.eval.tasks)}, threads "
        f"{base.threads}; {args.parallel} trials at a time on {os.cpu_count()} cpus; load "
        f"average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    watch = LoadWatch()
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.parallel, mp_context=context) as pool:
        futures = [pool.submit(one_trial, label, config) for label, config in configs.items()]
        reference = None if args.no_reference else pool.submit(one_reference, base)
        trials = [future.result() for future in futures]
        ref = None if reference is None else reference.result()
    total = time.perf_counter() - start
    print(
        f"\n{'arm':8} {'s/step':>7} {'load s':>7} {'train s':>8} {'eval s':>7} {'trial s':>8} "
        f"{'cpu s':>6} {'peak MB':>8}"
    )
    for t in trials:
        c = t["costs"]
        print(
            f"{t['label']:8} {c['train_seconds'] / t['steps']:>7.2f} {c['load_seconds']:>7.1f} "
            f"{c['train_seconds']:>8.1f} {c['eval_seconds']:>7.1f} {t['wall']:>8.1f} "
            f"{t['cpu']:>6.0f} {c['peak_memory_mb']:>8.0f}"
        )
    print("\ndev composite at step (seconds since the trial started):")
    for t in trials:
        points = "  ".join(f"{step}: {value:.3f} ({at:.0f} s)" for step, value, at in t["curve"])
        print(f"{t['label']:8} {points}")
    rows = [*trials, *([ref] if ref else [])]
    names = sorted({name for row in rows for name in row["tasks"]})
    categories = [c for c in ("STS", "Retrieval", "Classification", "Clustering")]
    categories = [c for c in categories if any(c in row["categories"] for row in rows)]
    print("\ntest scores:")
    print(f"{'':34}" + "".join(f"{n[:13]:>14}" for n in [*names, *categories, "average"]))
    for row in rows:
        values = [row["tasks"].get(n) for n in names]
        values += [row["categories"].get(c) for c in categories] + [row["average"]]
        text = "".join(f"{v:>14.4f}" if v is not None else f"{'-':>14}" for v in values)
        print(f"{row['label'][:34]:34}{text}")
    if ref:
        print(f"(reference scored in {ref['wall']:.0f} s, {ref['cpu']:.0f} CPU s)")
    print(
        f"\nall of it: {total:.0f} s wall; load average {watch.text()} while it ran, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
