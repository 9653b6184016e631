"""What the ``gpu`` and ``paper`` presets cost on one GPU: seconds per optimizer step of each paper
variant and cross-attention width, peak GPU memory, and encode throughput.

The hub is unreachable on the machines this project is built on, so the backbone is the preset's
real architecture (published Qwen2-0.5B / Mistral-7B shapes) with random weights: step cost and
memory depend on shapes, not on weight values. Texts are the real training pairs and task texts of
the tasks directory; the tokenizer is a byte-level BPE trained on them with the architecture's
vocabulary size, so sequence lengths are those of a real tokenizer of that size. Everything else is
the project's own path: ``load_backbone`` (attention mode), LoRA, the pooling head, ``train`` with
the preset's batch, accumulation and bf16, and ``encode``.

    python benchmarks/gpu_recipe.py --preset gpu --steps 3
    python benchmarks/gpu_recipe.py --preset paper --variants model1,model5 --widths ''

Needs a CUDA GPU, torch, transformers, peft and tokenizers (not mteb, optuna or ray).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from objectives.backbone import attention_kernels  # noqa: E402
from objectives.config import TrialConfig, override  # noqa: E402
from objectives.data import load_pairs, pairs_source  # noqa: E402
from objectives.model import EmbeddingModel  # noqa: E402
from objectives.presets import preset_config  # noqa: E402
from objectives.tasks import read_jsonl, resolve_tasks_dir  # noqa: E402
from objectives.training import train  # noqa: E402
from objectives.variants import apply_variant  # noqa: E402

EOS = "</s>"
# The published configs of the presets' backbones (their config.json on the hub), minus weights.
ARCHITECTURES: dict[str, PretrainedConfig] = {
    "Qwen/Qwen2-0.5B": Qwen2Config(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=131072,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "mistralai/Mistral-7B-v0.1": MistralConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=32000,
        max_position_embeddings=32768,
        rope_theta=10_000.0,
        rms_norm_eps=1e-5,
        sliding_window=4096,
    ),
}


def corpus(tasks_dir: Path) -> tuple[list[str], list[str]]:
    """(short texts, long documents): STS sentences and SciFact documents of the tasks directory."""
    sts = read_jsonl(
        tasks_dir / "sts" / "SICK-R" / "test.jsonl", {"sentence1": str, "sentence2": str}
    )
    docs = read_jsonl(tasks_dir / "retrieval" / "SciFactSubset" / "corpus.jsonl", {"text": str})
    short = [row[key] for row in sts for key in ("sentence1", "sentence2")]
    return short, [doc["text"] for doc in docs]


def random_backbone(name: str, texts: list[str], folder: Path) -> Path:
    """A model directory of architecture ``name`` with random bf16 weights and a fitted tokenizer."""
    hf_config = copy.deepcopy(ARCHITECTURES[name])
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(hf_config.vocab_size, 32000),
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS)
    hf_config.eos_token_id = tokenizer.eos_token_id
    with torch.device("cuda"):
        model = AutoModel.from_config(hf_config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def step_cost(config: TrialConfig, pairs: list, steps: int) -> dict[str, float]:
    """Seconds per optimizer step, pairs/s and peak GPU memory, after one warm-up step."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = EmbeddingModel.build(config.model, seed=config.seed, device="cuda")
    train(model, pairs, override(config.train, {"steps": 1}), seed=0, progress=False)
    stats = train(model, pairs, override(config.train, {"steps": steps}), seed=1, progress=False)
    counts = model.parameter_counts()
    del model
    return {
        "head": counts["head"],
        "trainable": counts["trainable"],
        "s_per_step": stats.seconds / steps,
        "pairs_per_s": stats.pairs / stats.seconds,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30,
    }


def encode_rate(config: TrialConfig, texts: list[str]) -> float:
    """Texts/s of ``encode`` at the preset's eval batch size (after a warm-up batch)."""
    model = EmbeddingModel.build(config.model, seed=config.seed, device="cuda")
    model.encode(texts[: config.eval.batch_size], config.eval.batch_size)
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.encode(texts, config.eval.batch_size)
    torch.cuda.synchronize()
    del model
    return len(texts) / (time.perf_counter() - start)


def measured(config: TrialConfig, pairs: list, steps: int) -> dict[str, float] | None:
    """``step_cost``, or ``None`` when the arm does not fit in GPU memory."""
    try:
        return step_cost(config, pairs, steps)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def table(title: str, rows: dict[str, dict[str, float] | None], base: TrialConfig) -> None:
    print(f"\n== {title} ==")
    print(
        f"{'arm':>10} {'head params':>14} {'trainable':>14} {'s/step':>8} {'pairs/s':>8} "
        f"{'peak GB':>8} {f'{base.train.steps} steps':>12}"
    )
    for arm, row in rows.items():
        if row is None:
            print(f"{arm:>10} out of GPU memory at batch {base.train.batch_size}", flush=True)
            continue
        total_min = row["s_per_step"] * base.train.steps / 60
        print(
            f"{arm:>10} {row['head']:>14,} {row['trainable']:>14,} {row['s_per_step']:>8.2f} "
            f"{row['pairs_per_s']:>8.0f} {row['peak_gb']:>8.1f} {total_min:>10.1f} m",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpu", choices=["gpu", "paper"])
    parser.add_argument("--tasks-dir", default=None)
    parser.add_argument("--variants", default="model1,model2,model3,model4,model5")
    parser.add_argument("--widths", default="8x512,16x1024,32x2048,64x4096")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per arm")
    parser.add_argument("--encode-texts", type=int, default=4096)
    parser.add_argument("--set", action="append", default=[], help="dotted override, k=v")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit(
            "error: no CUDA GPU; run this on a GPU machine (the CPU presets have trial_cost.py)"
        )
    default = str(REPO.parent / "shared" / "data")
    tasks_dir = resolve_tasks_dir(args.tasks_dir) or resolve_tasks_dir(default)
    base = preset_config(args.preset, {"eval.tasks_dir": str(tasks_dir)})
    pairs = load_pairs(pairs_source(base.train, str(tasks_dir)))
    short, long = corpus(tasks_dir)
    arch = base.model.backbone
    print(
        f"preset {args.preset}: {arch} shapes, random bf16 weights; {torch.cuda.get_device_name()}, "
        f"torch {torch.__version__}; batch {base.train.batch_size} x accum {base.train.grad_accum}, "
        f"max length {base.model.max_length}, {base.model.pooling.n_latents} latents"
    )
    with tempfile.TemporaryDirectory() as folder, attention_kernels("cuda"):
        start = time.perf_counter()
        texts = [t for p in pairs for t in (p.query, p.positive)] + short + long
        backbone = random_backbone(arch, texts, Path(folder))
        print(f"random backbone written in {time.perf_counter() - start:.0f} s")
        changes = dict(item.split("=", 1) for item in args.set)
        base = override(base, {"model.backbone": str(backbone), **changes})
        variants = [v for v in args.variants.split(",") if v]
        rows = {v: measured(apply_variant(base, v), pairs, args.steps) for v in variants}
        if rows:
            table("paper variants (heads x head_dim 32x2048)", rows, base)
        widths = [w for w in args.widths.split(",") if w]
        rows = {}
        for width in widths:
            heads, head_dim = width.split("x")
            arm = override(base, {"model.pooling.heads": heads, "model.pooling.head_dim": head_dim})
            rows[width] = measured(arm, pairs, args.steps)
        if rows:
            table("cross-attn-width arms (model5)", rows, base)
        n = args.encode_texts
        print(f"\n== encode (model5, batch {base.eval.batch_size}) ==")
        print(f"short texts (SICK-R sentences): {encode_rate(base, short[:n]):,.0f} texts/s")
        print(
            f"documents (SciFact, max length {base.model.max_length}): "
            f"{encode_rate(base, long[:n]):,.0f} texts/s"
        )


if __name__ == "__main__":
    main()
