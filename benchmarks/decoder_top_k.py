"""The `cpu-decoder` preset on SmolLM2-135M: what a `top-k-layers` trial costs per arm, and what
fine-tuning does to the STSBenchmark score of EOS pooling versus multi-layer pooling.

Two sections, each optional:

- ``--arms``: one full ``run_trial`` per arm of the ``top-k-layers`` study (top 4, 8, 16, all),
  built exactly as the launcher builds them (``search.arms.resolve_arms``): load / train / eval
  seconds, seconds per step, the process's CPU seconds (on a shared, busy machine wall time
  overstates the cost; CPU seconds / threads is what a quiet machine would take), peak memory,
  head parameters and the trial's average score;
- ``--sts-variants``: STSBenchmark Spearman (mteb's evaluator, ``--sts-pairs`` seeded pairs) of
  each variant untuned (LoRA and head freshly initialised, nothing trained) and tuned (after the
  preset's fine-tune, scored by ``run_trial``), e.g. model1 (EOS) against model3/model5
  (multi-layer pooling, causal/bidirectional).

    python benchmarks/decoder_top_k.py              # the preset as is: about 30 min on 2 cores
    python benchmarks/decoder_top_k.py --arms top-4,all --sts-variants model1,model5 \\
        --set train.steps=4 --set eval.max_texts=40 --sts-pairs 100   # reduced

``--set`` takes dotted overrides (as the CLI). Needs the tasks directory (``--tasks-dir`` or
``ABLATION_TASKS_DIR``, else ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from search.arms import resolve_arms

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from objectives.config.presets import preset_config  # noqa: E402
from objectives.config.trial_config import TrialConfig, override  # noqa: E402
from objectives.config.variants import apply_variant  # noqa: E402
from objectives.evaluation.mteb_tasks import load_tasks  # noqa: E402
from objectives.evaluation.scoring import CachedEncoder, evaluate  # noqa: E402
from objectives.model.embedding_model import EmbeddingModel  # noqa: E402
from objectives.model.layers import resolve_layers  # noqa: E402
from objectives.trial.run import run_trial  # noqa: E402
from search.arms import Choices  # noqa: E402
from search.plans import get_plan  # noqa: E402

PRESET = "cpu-decoder"
STS_TASK = "STSBenchmark"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def arm_costs(settings: Choices, wanted: list[str]) -> None:
    """One full trial per ``top-k-layers`` arm, as a study would run it (seed 0)."""
    arms = resolve_arms(get_plan("top-k-layers"), settings)
    for skipped in arms.skipped:
        print(f"skipped arm {skipped['arm']}: {skipped['reason']}")
    labels = [label for label in arms.labels if not wanted or label in wanted]
    base = arms.base_config
    print(
        f"\n== top-k-layers, one trial per arm ({base.train.steps} steps of "
        f"{base.train.batch_size} pairs, max_length {base.model.max_length}, "
        f"max_texts {base.eval.max_texts}, {len(base.eval.tasks)} tasks) =="
    )
    print(
        f"{'arm':8} {'layers':>7} {'head params':>12} {'load s':>7} {'train s':>8} "
        f"{'s/step':>7} {'eval s':>7} {'texts/s':>8} {'total s':>8} {'cpu s':>7} {'peak MB':>8} "
        f"{'average':>8}"
    )
    for label in labels:
        config = arms.configs[label]
        layers = resolve_layers(config.model.pooling.layers, arms.num_layers or 0)
        start, cpu = time.perf_counter(), time.process_time()
        result = run_trial(config, progress=False)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        c = result.costs
        print(
            f"{label:8} {len(layers):>7} {result.params['head']:>12,} {c.load_seconds:>7.1f} "
            f"{c.train_seconds:>8.1f} {c.train_seconds / config.train.steps:>7.2f} "
            f"{c.eval_seconds:>7.1f} {c.eval_texts_per_second:>8.1f} {total:>8.1f} {cpu:>7.0f} "
            f"{c.peak_memory_mb:>8.0f} {result.average:>8.4f}",
            flush=True,
        )


def untuned_sts(config: TrialConfig) -> float:
    """STSBenchmark Spearman of the freshly built model: the score before any fine-tuning."""
    model = EmbeddingModel.build(config.model, seed=config.seed)
    encoder = CachedEncoder(
        model,
        name=f"untuned-{PRESET}",
        embed_dim=model.dim,
        batch_size=config.eval.batch_size,
        query_prompt=config.model.query_prompt,
    )
    return evaluate(encoder, load_tasks(config.eval), progress=False).task_scores[STS_TASK]


def sts_before_after(base: TrialConfig, variants: list[str], pairs: int) -> None:
    """Untuned vs tuned STSBenchmark Spearman per variant, on the same seeded pairs."""
    sts = override(base, {"eval.tasks": STS_TASK, "eval.max_texts": 2 * pairs})
    print(
        f"\n== {STS_TASK} Spearman, untuned vs tuned ({pairs} pairs, {sts.train.steps} steps "
        f"of {sts.train.batch_size} pairs) =="
    )
    print(
        f"{'variant':8} {'pooling':>12} {'attention':>13} {'untuned':>8} {'tuned':>8} {'tune s':>7}"
    )
    for name in variants:
        config = apply_variant(sts, name)
        before = untuned_sts(config)
        start = time.perf_counter()
        after = run_trial(config, progress=False).task_scores[STS_TASK]
        print(
            f"{name:8} {config.model.pooling.kind:>12} {config.model.attention:>13} "
            f"{before:>8.4f} {after:>8.4f} {time.perf_counter() - start:>7.0f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks-dir", default=None)
    parser.add_argument(
        "--arms", type=_csv, default=["top-4", "top-8", "top-16", "all"], help="'' skips"
    )
    parser.add_argument("--sts-variants", type=_csv, default=["model1", "model3", "model5"])
    parser.add_argument("--sts-pairs", type=int, default=300, help="STSBenchmark pairs scored")
    parser.add_argument("--set", action="append", default=[], help="dotted override, k=v")
    args = parser.parse_args()
    tasks_dir = str(
        args.tasks_dir or os.environ.get("ABLATION_TASKS_DIR") or REPO.parent / "shared" / "data"
    )
    changes = tuple(tuple(item.split("=", 1)) for item in args.set)
    settings = Choices(preset=PRESET, tasks_dir=tasks_dir, overrides=changes)
    base = override(preset_config(PRESET, {"eval.tasks_dir": tasks_dir}), dict(changes))
    threads = base.threads or torch.get_num_threads()
    print(
        f"preset {PRESET}: backbone {base.model.backbone}, {threads} torch threads, "
        f"torch {torch.__version__}, {os.cpu_count()} cpus, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    if args.arms:
        arm_costs(settings, args.arms)
    if args.sts_variants:
        sts_before_after(base, args.sts_variants, args.sts_pairs)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
