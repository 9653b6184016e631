"""Training throughput: our training loop vs sentence-transformers' trainer on the same job.

Both fine-tune the packaged all-MiniLM-L6-v2 with mean pooling and the same LoRA adapters (r 16,
alpha 32, dropout 0.1 on query/key/value/dense) on the same real training triplets, with the same
batch size, max length, learning rate, in-batch + hard-negative InfoNCE at scale 20 (their
``MultipleNegativesRankingLoss``) and no-duplicates batches, in one process, alternating runs so
machine load hits both alike. Prints pairs/s of each, the ratio (goal >= 1.0) and the load average.

Like with like: both train LoRA (the backbone frozen), both pad per forward pass. Theirs embeds
each column (anchors, positives, negatives) in its own pass; ours embeds a step's texts in
length-bucketed passes of at most ``--max-tokens`` padded tokens (``--max-tokens 0``: one pass
per micro-batch, every text padded to the longest of all, as before the budget existed).

    python benchmarks/train_throughput.py [--steps N] [--batch-size B] [--threads T] [--repeats R]
        [--max-tokens T]
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
TASKS_DIR = Path(os.environ.get("ABLATION_TASKS_DIR", REPO.parent / "shared" / "data"))
LORA = {"r": 16, "alpha": 32, "dropout": 0.1, "targets": ["query", "key", "value", "dense"]}


def ours(pairs: list, args: argparse.Namespace) -> float:
    """Seconds of optimizer steps of ``objectives.training.loop.train``."""
    from objectives.config.trial_config import LoraSettings, ModelConfig, PoolingConfig, TrainConfig
    from objectives.model.embedding_model import EmbeddingModel
    from objectives.training.loop import train

    lora = LoraSettings(LORA["r"], LORA["alpha"], LORA["dropout"], tuple(LORA["targets"]))
    model = EmbeddingModel.build(
        ModelConfig(pooling=PoolingConfig(kind="mean"), lora=lora, max_length=args.max_length)
    )
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=1,
        lr=1e-4,
        warmup_steps=1,
        eval_every=args.steps,
        max_tokens=args.max_tokens or None,
    )
    return train(model, pairs, config, seed=0, progress=False).seconds


def theirs(pairs: list, args: argparse.Namespace, output_dir: Path) -> float:
    """Seconds of ``SentenceTransformerTrainer.train`` (its own ``train_runtime``)."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from objectives.model.backbone import resolve_backbone

    model = SentenceTransformer(resolve_backbone("minilm"), device="cpu")
    model.max_seq_length = args.max_length
    transformer = model[0]  # peft wraps the Hugging Face model inside, as ours does
    transformer.model = get_peft_model(
        transformer.model,
        LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["targets"],
        ),
    )
    rows = [p for p in pairs if p.negative]
    data = Dataset.from_dict(
        {
            "anchor": [p.query for p in rows],
            "positive": [p.positive for p in rows],
            "negative": [p.negative for p in rows],
        }
    )
    training = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-4,
        warmup_steps=1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_strategy="no",
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training,
        train_dataset=data,
        loss=MultipleNegativesRankingLoss(model, scale=20.0),
    )
    return float(trainer.train().metrics["train_runtime"])


def loads() -> str:
    """The machine's load averages, which the figures depend on."""
    return " / ".join(f"{load:.2f}" for load in os.getloadavg())


def padded_tokens(pairs: list, args: argparse.Namespace) -> dict[str, float]:
    """Tokens per step that each side's forward passes compute (padding included), and the real
    ones, over our first ``--steps`` batches: what a CPU step costs, whatever the load."""
    from transformers import AutoTokenizer

    from objectives.model.backbone import resolve_backbone
    from objectives.training.pairs import batches, token_budget_chunks

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    stream = batches(pairs, args.batch_size, seed=0)
    totals = dict.fromkeys(("ours", "sentence-transformers", "real"), 0)
    for _ in range(args.steps):
        batch = next(stream)
        columns = [
            [p.query for p in batch],
            [p.positive for p in batch],
            [p.negative for p in batch],
        ]
        lengths = [
            [
                len(ids)
                for ids in tokenizer(column, truncation=True, max_length=args.max_length)[
                    "input_ids"
                ]
            ]
            for column in columns
        ]
        texts = [n for column in lengths for n in column]
        passes = (
            token_budget_chunks(texts, args.max_tokens) if args.max_tokens else [range(len(texts))]
        )
        totals["ours"] += sum(len(rows) * max(texts[i] for i in rows) for rows in passes)
        totals["sentence-transformers"] += sum(len(column) * max(column) for column in lengths)
        totals["real"] += sum(texts)
    return {name: total / args.steps for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs; best counts")
    parser.add_argument(
        "--max-tokens", type=int, default=512, help="our token budget per pass; 0: one per batch"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    import tempfile

    from objectives.training.pairs import load_pairs

    pairs = [p for p in load_pairs(str(TASKS_DIR / "train" / "pairs.jsonl")) if p.negative]
    best = {"ours": float("inf"), "sentence-transformers": float("inf")}
    print(f"load average (1/5/15 min) at the start: {loads()} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):
            start = time.perf_counter()
            best["ours"] = min(best["ours"], ours(pairs, args))
            print(f"ours run done in {time.perf_counter() - start:.0f} s wall", flush=True)
            best["sentence-transformers"] = min(
                best["sentence-transformers"], theirs(pairs, args, Path(scratch))
            )
    pairs_done = args.steps * args.batch_size
    budget = f"{args.max_tokens} tokens per pass" if args.max_tokens else "one pass per batch"
    print(
        f"MiniLM, mean pooling, LoRA r16 | {args.steps} steps x {args.batch_size} triplets | max "
        f"length {args.max_length} | {args.threads} threads | best of {args.repeats} | ours: "
        f"{budget}"
    )
    print(f"load average (1/5/15 min) at the end: {loads()} on {os.cpu_count()} CPUs")
    for name, seconds in best.items():
        print(f"{name:>22}: {pairs_done / seconds:7.1f} pairs/s ({seconds:.1f} s)")
    ratio = best["sentence-transformers"] / best["ours"]
    print(f"train throughput: ratio ours / sentence-transformers {ratio:.2f} (goal >= 1.0)")
    tokens = padded_tokens(pairs, args)
    print(
        "tokens per step, padding included: ours {ours:.0f}, sentence-transformers "
        "{sentence-transformers:.0f} (one pass per column); real tokens {real:.0f}".format_map(
            tokens
        )
    )


if __name__ == "__main__":
    main()
