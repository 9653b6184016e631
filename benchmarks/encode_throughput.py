"""Encode throughput: our ``EmbeddingModel.encode`` vs sentence-transformers on the same model.

Both encode the same real sentences (SICK-R test, by default) with the packaged all-MiniLM-L6-v2 and
mean pooling, in the same process, alternating runs so machine load hits both alike. Prints
sentences/s of each, their ratio (goal >= 1.0), the agreement of the embeddings and peak RSS.

    python benchmarks/encode_throughput.py [--data PATH] [--limit N] [--threads T] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from objectives.trial.memory import peak_memory  # noqa: E402

DEFAULT_DATA = (
    Path(os.environ.get("ABLATION_TASKS_DIR", REPO.parent / "shared" / "data"))
    / "sts"
    / "SICK-R"
    / "test.jsonl"
)


def load_sentences(path: Path, limit: int | None) -> list[str]:
    """Both sentences of every STS pair, in file order."""
    sentences = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            sentences += [row["sentence1"], row["sentence2"]]
    return sentences[:limit]


def timed(encode: Callable[[], np.ndarray]) -> tuple[float, np.ndarray, float]:
    """Seconds, embeddings and peak RSS (MiB) of one encode run."""
    with peak_memory("cpu") as peak:
        start = time.perf_counter()
        embeddings = encode()
        seconds = time.perf_counter() - start
        peak_mb = peak()
    return seconds, embeddings, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="STS JSONL file")
    parser.add_argument("--limit", type=int, default=4000, help="sentences to encode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs; best counts")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    from objectives.config.trial_config import ModelConfig, PoolingConfig
    from objectives.model.backbone import resolve_backbone
    from objectives.model.embedding_model import EmbeddingModel

    sentences = load_sentences(args.data, args.limit)
    config = ModelConfig(
        backbone="minilm", pooling=PoolingConfig("mean"), lora=None, max_length=256
    )
    ours = EmbeddingModel.build(config)
    theirs = SentenceTransformer(resolve_backbone("minilm"), device="cpu")
    theirs.max_seq_length = config.max_length
    runners = {
        "ours": lambda: ours.encode(sentences, batch_size=args.batch_size),
        "sentence-transformers": lambda: theirs.encode(
            sentences, batch_size=args.batch_size, normalize_embeddings=True
        ),
    }
    # Warm-up: first-call allocations and kernel selection are not throughput.
    ours.encode(sentences[:64])
    theirs.encode(sentences[:64])

    best: dict[str, float] = dict.fromkeys(runners, float("inf"))
    peak: dict[str, float] = dict.fromkeys(runners, 0.0)
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            seconds, outputs[name], peak_mb = timed(run)
            best[name] = min(best[name], seconds)
            peak[name] = max(peak[name], peak_mb)

    n = len(sentences)
    print(f"{n} sentences from {args.data} | batch {args.batch_size} | {args.threads} threads")
    for name in runners:
        print(
            f"{name:>22}: {n / best[name]:8.1f} sentences/s  (best of {args.repeats}: "
            f"{best[name]:.2f} s, peak RSS during runs {peak[name]:.0f} MB)"
        )
    print(
        f"ratio ours / sentence-transformers: {best['sentence-transformers'] / best['ours']:.2f}"
        " (goal >= 1.0)"
    )
    cosine = np.sum(outputs["ours"] * outputs["sentence-transformers"], axis=1)
    print(f"agreement: min cosine between the two embeddings {cosine.min():.6f}")
    peak_process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process (both models loaded): {peak_process:.0f} MB")


if __name__ == "__main__":
    main()
