"""What a trial costs: the time split of whole trials per pooling variant, and how training cost
grows with the cross-attention width (heads x head_dim) and the number of pooled layers.

Four sections, each optional:

- ``--variants``: a full ``run_trial`` per paper variant (model1..model5) under ``--preset``:
  load / train / eval seconds, training pairs/s, eval texts/s, peak memory, head parameters;
- ``--widths``: training only (``--steps`` optimizer steps after one warm-up step: seconds per
  step, pairs/s, peak memory) per heads x head_dim arm of the cross-attn-width study, on the
  preset's multi-layer model;
- ``--layers``: the same per layer selection (``all``, ``top_k:K``, thirds);
- ``--algebras``: the same for ``--algebra-variant`` (model4: the resampler over every token
  state) with the resampler's algebra forced (``tokens``, ``values``, ``latents``) or ``auto``
  (picked per call); before the key-side fold ``auto`` chose between tokens and values only.

    python benchmarks/trial_cost.py --preset cpu --variants model1,model5 \\
        --widths 8x512,32x2048 --layers top_k:2,all --steps 3 --set train.steps=10
    python benchmarks/trial_cost.py --variants "" --widths "" --layers "" --steps 1 \\
        --algebras tokens,values,latents,auto

``--set`` takes dotted overrides (as the CLI), e.g. ``--set eval.max_texts=200`` for a shorter run.
Needs the tasks directory (``--tasks-dir`` or ``ABLATION_TASKS_DIR``, else ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from objectives.config.presets import preset_config  # noqa: E402
from objectives.config.trial_config import TrialConfig, override  # noqa: E402
from objectives.config.variants import apply_variant  # noqa: E402
from objectives.model.embedding_model import EmbeddingModel  # noqa: E402
from objectives.model.pooling import LatentResampler  # noqa: E402
from objectives.training.loop import train  # noqa: E402
from objectives.training.pairs import cap_pairs, load_pairs, pairs_source  # noqa: E402
from objectives.trial.memory import peak_memory  # noqa: E402
from objectives.trial.run import run_trial  # noqa: E402


def _csv(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def variant_costs(base: TrialConfig, variants: list[str]) -> None:
    """One full trial per variant: where the time goes."""
    print(f"\n== full trials ({base.train.steps} steps, max_texts={base.eval.max_texts}) ==")
    print(
        f"{'variant':8} {'head params':>12} {'load s':>7} {'train s':>8} {'pairs/s':>8} "
        f"{'eval s':>7} {'texts/s':>8} {'total s':>8} {'peak MB':>8} {'average':>8}"
    )
    for name in variants:
        start = time.perf_counter()
        result = run_trial(apply_variant(base, name), progress=False)
        total = time.perf_counter() - start
        c = result.costs
        print(
            f"{name:8} {result.params['head']:>12,} {c.load_seconds:>7.1f} "
            f"{c.train_seconds:>8.1f} {c.train_pairs_per_second:>8.1f} "
            f"{c.eval_seconds:>7.1f} {c.eval_texts_per_second:>8.0f} {total:>8.1f} "
            f"{c.peak_memory_mb:>8.0f} {result.average:>8.4f}",
            flush=True,
        )


def training_cost(
    config: TrialConfig, steps: int, algebra: str | None = None
) -> tuple[int, float, float, float]:
    """(head parameters, seconds per optimizer step, pairs/s, peak MiB of model and training)
    after one warm-up step; ``algebra`` forces the resampler's form (None: picked per call)."""
    pairs = cap_pairs(load_pairs(pairs_source(config.train, config.eval.tasks_dir)), 2048)
    with peak_memory("cpu") as peak:
        model = EmbeddingModel.build(config.model, seed=config.seed)
        for module in model.modules():
            if isinstance(module, LatentResampler):
                module.algebra = algebra
        torch.manual_seed(config.seed)
        train(model, pairs, override(config.train, {"steps": 1}), seed=0, progress=False)
        stats = train(
            model, pairs, override(config.train, {"steps": steps}), seed=1, progress=False
        )
        peak_mb = peak()
    head = model.parameter_counts()["head"]
    return head, stats.seconds / steps, stats.pairs / stats.seconds, peak_mb


def scaling(base: TrialConfig, field: str, values: list[str], steps: int) -> None:
    """Training cost per value of one model field (width or layer selection)."""
    print(f"\n== training cost by {field} ({steps} steps, batch {base.train.batch_size}) ==")
    print(f"{field:>22} {'head params':>12} {'s/step':>8} {'pairs/s':>8} {'peak MB':>8}")
    for value in values:
        if field == "heads x head_dim":
            heads, head_dim = value.lower().split("x")
            changes = {"model.pooling.heads": heads, "model.pooling.head_dim": head_dim}
        else:
            changes = {"model.pooling.layers": value}
        head, per_step, rate, peak_mb = training_cost(override(base, changes), steps)
        print(f"{value:>22} {head:>12,} {per_step:>8.2f} {rate:>8.1f} {peak_mb:>8.0f}", flush=True)


def algebra_costs(base: TrialConfig, variant: str, algebras: list[str], steps: int) -> None:
    """Training cost of one variant per resampler algebra (``auto``: picked per call)."""
    config = apply_variant(base, variant)
    pooling = config.model.pooling
    print(
        f"\n== {variant} training cost by resampler algebra ({steps} steps, batch "
        f"{base.train.batch_size}, {pooling.n_latents} latents, {pooling.heads}x{pooling.head_dim}) =="
    )
    print(f"{'algebra':>22} {'head params':>12} {'s/step':>8} {'pairs/s':>8} {'peak MB':>8}")
    for algebra in algebras:
        forced = None if algebra == "auto" else algebra
        head, per_step, rate, peak_mb = training_cost(config, steps, forced)
        print(
            f"{algebra:>22} {head:>12,} {per_step:>8.2f} {rate:>8.1f} {peak_mb:>8.0f}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--tasks-dir", default=None)
    parser.add_argument("--variants", type=_csv, default=["model1", "model2", "model4", "model5"])
    parser.add_argument("--widths", type=_csv, default=["8x512", "16x1024", "32x2048", "64x4096"])
    parser.add_argument("--layers", type=_csv, default=["top_k:1", "top_k:2", "top_k:4", "all"])
    parser.add_argument("--algebras", type=_csv, default=[], help="tokens, values, latents, auto")
    parser.add_argument("--algebra-variant", default="model4")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per scaling point")
    parser.add_argument("--set", action="append", default=[], help="dotted override, k=v")
    args = parser.parse_args()
    tasks_dir = (
        args.tasks_dir or os.environ.get("ABLATION_TASKS_DIR") or REPO.parent / "shared" / "data"
    )
    changes = dict(item.split("=", 1) for item in args.set)
    base = preset_config(args.preset, {"eval.tasks_dir": str(tasks_dir), **changes})
    print(
        f"preset {args.preset}: backbone {base.model.backbone}, threads {base.threads}, "
        f"torch {torch.__version__}, {os.cpu_count()} cpus"
    )
    if base.threads:
        torch.set_num_threads(base.threads)
    if args.variants:
        variant_costs(base, args.variants)
    if args.widths:
        scaling(base, "heads x head_dim", args.widths, args.steps)
    if args.layers:
        scaling(base, "layers", args.layers, args.steps)
    if args.algebras:
        algebra_costs(base, args.algebra_variant, args.algebras, args.steps)


if __name__ == "__main__":
    main()
