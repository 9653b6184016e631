"""What the ``gpu`` and ``paper`` presets cost on one GPU: seconds per optimizer step of each paper
variant and cross-attention width, tokens/s and model FLOP utilisation, peak GPU memory, and encode
throughput.

The hub is unreachable on the machines this project is built on, so the backbone is the preset's
real architecture (published Qwen2-0.5B / Mistral-7B shapes) with random weights: step cost and
memory depend on shapes, not on weight values. Texts are the real training pairs and task texts of
the tasks directory; the tokenizer is a byte-level BPE trained on them with the architecture's
vocabulary size, so sequence lengths are those of a real tokenizer of that size. Everything else is
the project's own path: ``load_backbone`` (attention mode), LoRA, the pooling head, ``train`` with
the preset's batch, accumulation and bf16, and ``encode``.

MFU is 6 x path parameters x real tokens per second / the GPU's dense bf16 peak (``PEAK_BF16``).
Path parameters are the backbone's without its input embedding table (a lookup, not a matmul):
every token runs forward and backward through all of them, LoRA sitting in every layer. The head
is left out, since what it costs follows the vectors it reads (every token for model4, a few
per text for model5), and so is the cached path's extra forward pass (recomputation, like
activation checkpointing's, is not model work). With LoRA the backward computes no gradient for
the frozen weights, so the work done is nearer 4 than 6 x parameters x tokens: the 6 is the
usual convention (and the issue's), read the figure with that in mind. ``--max-tokens`` lists
token budgets of one forward pass (length-bucketed passes, ``objectives.training.loop.forward_passes``;
0 is one pass per micro-batch): the variants table is printed for each, the widths for the first.

    python benchmarks/gpu_recipe.py --preset gpu --steps 3
    python benchmarks/gpu_recipe.py --preset gpu --variants model1,model5 --widths '' --max-tokens 0,16384,65536
    python benchmarks/gpu_recipe.py --preset paper --variants model1,model5 --widths ''
    python benchmarks/gpu_recipe.py --dry-run   # a CPU-sized run of this script's code path

Needs a CUDA GPU (but for ``--dry-run``), torch, transformers, peft and tokenizers (not mteb,
optuna or ray).
"""

from __future__ import annotations

import argparse
import copy
import math
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

from objectives.config.presets import preset_config  # noqa: E402
from objectives.config.trial_config import TrialConfig, override  # noqa: E402
from objectives.config.variants import apply_variant  # noqa: E402
from objectives.evaluation.mteb_tasks import read_jsonl, resolve_tasks_dir  # noqa: E402
from objectives.model.backbone import attention_kernels  # noqa: E402
from objectives.model.embedding_model import EmbeddingModel  # noqa: E402
from objectives.training.loop import train  # noqa: E402
from objectives.training.pairs import load_pairs, pairs_source  # noqa: E402

EOS = "</s>"
# Dense (no sparsity) bf16 tensor-core peaks in FLOP/s from NVIDIA's datasheets, by a fragment of
# torch.cuda.get_device_name(); the first fragment the name contains wins, so variants come first.
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200 NVL", 835e12),
    ("H200", 989e12),  # SXM
    ("A100", 312e12),  # SXM and PCIe alike
)
# --dry-run: the architecture's family at a size a CPU trains in seconds, and a recipe to match.
DRY_SHAPES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2000,
}
DRY_RECIPE = {
    "train.batch_size": 4,
    "train.grad_accum": 2,
    "model.max_length": 64,
    "model.pooling.heads": 4,
    "model.pooling.head_dim": 32,
    "model.pooling.n_latents": 8,
}
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


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name (``PEAK_BF16``), ``None`` when not in the table."""
    return next((peak for fragment, peak in PEAK_BF16 if fragment in device_name), None)


def random_backbone(
    name: str, texts: list[str], folder: Path, device: str, dry_run: bool = False
) -> Path:
    """A model directory of architecture ``name`` with random bf16 weights and a fitted tokenizer;
    ``dry_run`` shrinks the architecture to ``DRY_SHAPES``."""
    hf_config = copy.deepcopy(ARCHITECTURES[name])
    if dry_run:  # rebuilt, so that fields derived from the depth (layer_types) follow it
        fields = {k: v for k, v in hf_config.to_dict().items() if k != "layer_types"}
        hf_config = type(hf_config).from_dict({**fields, **DRY_SHAPES})
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        # Room for the tokens a tokenizer class adds when it is loaded (Qwen2's pad token).
        vocab_size=min(hf_config.vocab_size - 64, 32000),
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS)
    hf_config.eos_token_id = tokenizer.eos_token_id
    with torch.device(device):
        model = AutoModel.from_config(hf_config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def path_parameters(model: EmbeddingModel) -> int:
    """The backbone's parameters but its input embedding table: what every token's forward and
    backward pass multiplies through (the MFU numerator's parameter count)."""
    embedding = model.backbone.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.backbone.parameters()) - embedding


def step_cost(
    config: TrialConfig, pairs: list, steps: int, device: str, max_tokens: int | None
) -> dict[str, float]:
    """Seconds per optimizer step, pairs/s, real tokens/s, MFU (``nan`` off the ``PEAK_BF16``
    table) and peak GPU memory (0 on a CPU), after one warm-up step."""
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = EmbeddingModel.build(config.model, seed=config.seed, device=device)
    warm_up = override(config.train, {"steps": 1, "max_tokens": max_tokens})
    train(model, pairs, warm_up, seed=0, progress=False)
    timed = override(config.train, {"steps": steps, "max_tokens": max_tokens})
    stats = train(model, pairs, timed, seed=1, progress=False)
    counts = model.parameter_counts()
    tokens_per_s = stats.tokens / stats.seconds
    peak = peak_flops(torch.cuda.get_device_name()) if cuda else None
    mfu = 6 * path_parameters(model) * tokens_per_s / peak if peak else float("nan")
    del model
    return {
        "head": counts["head"],
        "trainable": counts["trainable"],
        "s_per_step": stats.seconds / steps,
        "pairs_per_s": stats.pairs / stats.seconds,
        "tokens_per_s": tokens_per_s,
        "mfu": mfu,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
    }


def encode_rate(config: TrialConfig, texts: list[str], device: str) -> float:
    """Texts/s of ``encode`` at the preset's eval batch size (after a warm-up batch)."""
    model = EmbeddingModel.build(config.model, seed=config.seed, device=device)
    model.encode(texts[: config.eval.batch_size], config.eval.batch_size)
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    model.encode(texts, config.eval.batch_size)
    synchronize()
    del model
    return len(texts) / (time.perf_counter() - start)


def measured(
    config: TrialConfig, pairs: list, steps: int, device: str, max_tokens: int | None
) -> dict[str, float] | None:
    """``step_cost``, or ``None`` when the arm does not fit in GPU memory."""
    try:
        return step_cost(config, pairs, steps, device, max_tokens)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def table(title: str, rows: dict[str, dict[str, float] | None], base: TrialConfig) -> None:
    print(f"\n== {title} ==")
    print(
        f"{'arm':>10} {'head params':>14} {'trainable':>14} {'s/step':>8} {'pairs/s':>8} "
        f"{'tokens/s':>10} {'MFU':>6} {'peak GB':>8} {f'{base.train.steps} steps':>12}"
    )
    for arm, row in rows.items():
        if row is None:
            print(f"{arm:>10} out of GPU memory at batch {base.train.batch_size}", flush=True)
            continue
        total_min = row["s_per_step"] * base.train.steps / 60
        mfu = "n/a" if math.isnan(row["mfu"]) else f"{row['mfu']:.1%}"
        print(
            f"{arm:>10} {row['head']:>14,} {row['trainable']:>14,} {row['s_per_step']:>8.2f} "
            f"{row['pairs_per_s']:>8.0f} {row['tokens_per_s']:>10,.0f} {mfu:>6} "
            f"{row['peak_gb']:>8.1f} {total_min:>10.1f} m",
            flush=True,
        )


def passes(max_tokens: int | None) -> str:
    return f"passes of {max_tokens} tokens" if max_tokens else "one pass per micro-batch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpu", choices=["gpu", "paper"])
    parser.add_argument("--tasks-dir", default=None)
    parser.add_argument("--variants", default="model1,model2,model3,model4,model5")
    parser.add_argument("--widths", default="8x512,16x1024,32x2048,64x4096")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per arm")
    parser.add_argument("--encode-texts", type=int, default=4096)
    parser.add_argument(
        "--max-tokens",
        default="0",
        help="padded-token budgets of one forward pass, comma-separated; 0: one per micro-batch",
    )
    parser.add_argument("--set", action="append", default=[], help="dotted override, k=v")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="on the CPU, shrunk shapes and recipe, 1 step of model1 and model5: checks the path",
    )
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        parser.error(
            "no CUDA GPU; run this on a GPU machine, or pass --dry-run to check the script on "
            "the CPU (the CPU presets' costs are trial_cost.py's)"
        )
    if args.dry_run:
        args.variants, args.widths, args.steps, args.encode_texts = "model1,model5", "", 1, 64
    default = str(REPO.parent / "shared" / "data")
    tasks_dir = resolve_tasks_dir(args.tasks_dir) or resolve_tasks_dir(default)
    recipe = {"eval.tasks_dir": str(tasks_dir), **(DRY_RECIPE if args.dry_run else {})}
    base = preset_config(args.preset, recipe)
    pairs = load_pairs(pairs_source(base.train, str(tasks_dir)))
    short, long = corpus(tasks_dir)
    arch = base.model.backbone
    try:
        budgets = [int(b) or None for b in args.max_tokens.split(",")]
    except ValueError:
        parser.error(f"--max-tokens {args.max_tokens!r}: give token counts such as 0,16384")
    where = "CPU (dry run, shrunk shapes)" if args.dry_run else torch.cuda.get_device_name()
    print(
        f"preset {args.preset}: {arch} shapes, random bf16 weights; {where}, "
        f"torch {torch.__version__}; batch {base.train.batch_size} x accum {base.train.grad_accum}, "
        f"max length {base.model.max_length}, {base.model.pooling.n_latents} latents"
    )
    with tempfile.TemporaryDirectory() as folder, attention_kernels(device):
        start = time.perf_counter()
        texts = [t for p in pairs for t in (p.query, p.positive)] + short + long
        backbone = random_backbone(arch, texts, Path(folder), device, args.dry_run)
        print(f"random backbone written in {time.perf_counter() - start:.0f} s")
        changes = dict(item.split("=", 1) for item in args.set)
        base = override(base, {"model.backbone": str(backbone), **changes})
        variants = [v for v in args.variants.split(",") if v]
        width = f"{base.model.pooling.heads}x{base.model.pooling.head_dim}"
        for max_tokens in budgets if variants else []:
            rows = {
                v: measured(apply_variant(base, v), pairs, args.steps, device, max_tokens)
                for v in variants
            }
            table(f"paper variants (heads x head_dim {width}), {passes(max_tokens)}", rows, base)
        widths = [w for w in args.widths.split(",") if w]
        rows = {}
        for width in widths:
            heads, head_dim = width.split("x")
            arm = override(base, {"model.pooling.heads": heads, "model.pooling.head_dim": head_dim})
            rows[width] = measured(arm, pairs, args.steps, device, budgets[0])
        if rows:
            table(f"cross-attn-width arms (model5), {passes(budgets[0])}", rows, base)
        n = args.encode_texts
        print(f"\n== encode (model5, batch {base.eval.batch_size}) ==")
        print(
            f"short texts (SICK-R sentences): {encode_rate(base, short[:n], device):,.0f} texts/s"
        )
        print(
            f"documents (SciFact, max length {base.model.max_length}): "
            f"{encode_rate(base, long[:n], device):,.0f} texts/s"
        )


if __name__ == "__main__":
    main()
