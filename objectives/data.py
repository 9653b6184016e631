"""Training pairs and the held-out dev slices behind the cheap intermediate signal.

Pairs come from a JSONL file in the format of ``shared/data/train/pairs.jsonl``
(``{"query", "positive", "negative"?}``) or, online, from an HF dataset name. Whatever their source,
a pair with any text that is also an evaluated text is dropped before training (``drop_overlap``):
a model trained on a test text would be scored on its own training data. Dev slices are drawn
with the fixed ``SUBSAMPLE_SEED``, so every trial of a study trains on the same pairs (only their
order depends on the trial seed) and is pruned on the same dev texts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from objectives.config import ConfigError, TrainConfig
from objectives.tasks import SUBSAMPLE_SEED, TaskDataError, read_jsonl, resolve_tasks_dir

PAIRS_FILE = "train/pairs.jsonl"
DEV_STS_FILE = "sts/STSBenchmark/dev.jsonl"  # the validation split: never a test split
DEV_STS_ONLINE = ("mteb/stsbenchmark-sts", "validation")


@dataclass(frozen=True)
class Pair:
    """A training example: the query must pick ``positive`` over every other candidate."""

    query: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class DevSlices:
    """Held-out texts for the intermediate signal (see ``objectives.evaluation.dev_signal``).

    ``sts``: (sentence1, sentence2, gold score) pairs; ``retrieval``: held-out training pairs
    whose query must rank its own positive first among all their positives and negatives.
    """

    sts: list[tuple[str, str, float]] = field(default_factory=list)
    retrieval: list[Pair] = field(default_factory=list)


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to test texts for overlap."""
    return " ".join(text.lower().split())


def pairs_source(train: TrainConfig, tasks_dir: str | None) -> str:
    """``train.data``, else ``train/pairs.jsonl`` under the tasks directory."""
    if train.data:
        return train.data
    root = resolve_tasks_dir(tasks_dir)
    if root is None:
        raise ConfigError(
            "no training data: set train.data to a JSONL file or an HF dataset name, or give a "
            "tasks directory (--tasks-dir / ABLATION_TASKS_DIR) holding train/pairs.jsonl"
        )
    return str(root / PAIRS_FILE)


def load_pairs(source: str) -> list[Pair]:
    """Pairs from a JSONL file (a path that exists or ends in .jsonl) or an HF dataset name."""
    path = Path(source).expanduser()
    if path.suffix == ".jsonl" or path.exists():
        rows = read_jsonl(path, {"query": str, "positive": str}, _check_negative)
        return [Pair(r["query"], r["positive"], r.get("negative") or None) for r in rows]
    return _hf_pairs(source)


def _check_negative(row: dict) -> str | None:
    negative = row.get("negative")
    if negative is not None and not isinstance(negative, str):
        return f"field 'negative' has the wrong type ({type(negative).__name__})"
    return None


def _hf_pairs(name: str) -> list[Pair]:
    """An HF dataset's train split: (query|anchor, positive, negative?) columns, by name or order."""
    import datasets

    try:
        data = datasets.load_dataset(name, split="train")
    except Exception as exc:  # any load failure becomes one line naming the fix
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"cannot load training data {name!r} ({reason}); give a JSONL file or an HF dataset "
            "name reachable from here"
        ) from None
    columns = data.column_names
    query = next((c for c in ("query", "anchor") if c in columns), None)
    if query and "positive" in columns:
        names = [query, "positive"] + (["negative"] if "negative" in columns else [])
    else:
        names = [c for c in columns if data.features[c].dtype == "string"][:3]
    if len(names) < 2:
        raise TaskDataError(
            f"{name}: need (query, positive[, negative]) text columns, got {columns}"
        )
    rows = zip(*(data[c] for c in names), strict=True)
    return [Pair(r[0], r[1], r[2] if len(r) > 2 and r[2] else None) for r in rows]


def drop_overlap(pairs: list[Pair], exclude: set[str]) -> tuple[list[Pair], int]:
    """(the pairs sharing no text with ``exclude``, how many were dropped).

    ``exclude`` holds the evaluated texts, normalised. Online tasks are not read before
    evaluation, so there it is empty and nothing is dropped.
    """
    kept = [
        p
        for p in pairs
        if not {normalise(t) for t in (p.query, p.positive, p.negative) if t} & exclude
    ]
    return kept, len(pairs) - len(kept)


def split_dev(pairs: list[Pair], dev_queries: int) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, dev pairs): ``dev_queries`` pairs held out of training, the same ones for
    every trial. Give it pairs that ``drop_overlap`` cleaned, so no dev text is evaluated either."""
    rng = random.Random(SUBSAMPLE_SEED)
    held = set(rng.sample(range(len(pairs)), min(dev_queries, len(pairs))))
    train = [p for i, p in enumerate(pairs) if i not in held]
    dev = [pairs[i] for i in sorted(held)]
    return train, dev


def cap_pairs(pairs: list[Pair], max_pairs: int | None) -> list[Pair]:
    """At most ``max_pairs`` training pairs, the same ones for every trial seed."""
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    keep = sorted(random.Random(SUBSAMPLE_SEED).sample(range(len(pairs)), max_pairs))
    return [pairs[i] for i in keep]


def dev_sts(tasks_dir: str | None, count: int, exclude: set[str]) -> list[tuple[str, str, float]]:
    """``count`` scored pairs for the STS half of the signal, sharing no sentence with ``exclude``.

    The STS Benchmark validation split: offline its file ``DEV_STS_FILE``, online from the hub;
    pairs that share a sentence with an evaluated text are dropped.
    """
    if count <= 0:
        return []
    root = resolve_tasks_dir(tasks_dir)
    if root is None:
        import datasets

        name, split = DEV_STS_ONLINE
        data = datasets.load_dataset(name, split=split)
        rows: Iterable[tuple[str, str, float]] = zip(
            data["sentence1"], data["sentence2"], data["score"], strict=True
        )
    else:
        fields = {"sentence1": str, "sentence2": str, "score": (int, float)}
        records = read_jsonl(root / DEV_STS_FILE, fields)
        rows = ((r["sentence1"], r["sentence2"], float(r["score"])) for r in records)
    eligible = [
        r for r in rows if normalise(r[0]) not in exclude and normalise(r[1]) not in exclude
    ]
    rng = random.Random(SUBSAMPLE_SEED)
    return [
        eligible[i] for i in sorted(rng.sample(range(len(eligible)), min(count, len(eligible))))
    ]


def batches(pairs: list[Pair], batch_size: int, seed: int) -> Iterator[list[Pair]]:
    """Endless batches: each epoch is a fresh shuffle drawn from ``seed`` (same seed, same order).

    A batch never holds the same query or positive text twice (as sentence-transformers'
    no-duplicates sampler), so no in-batch "negative" is a copy of the positive.
    """
    keys = [{normalise(p.query), normalise(p.positive)} for p in pairs]
    rng = random.Random(seed)
    while True:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        produced = False
        for batch in _distinct_batches(order, keys, batch_size):
            produced = True
            yield [pairs[i] for i in batch]
        if not produced:
            raise ConfigError(
                f"cannot form a batch of {batch_size} pairs with distinct texts from "
                f"{len(pairs)} training pairs; lower train.batch_size"
            )


def _distinct_batches(
    order: list[int], keys: list[set[str]], batch_size: int
) -> Iterator[list[int]]:
    """Greedy fill in shuffled order; a clashing pair waits for a later batch of the epoch, and
    the few left over at the end wait for the next epoch's shuffle."""
    waiting = order
    while len(waiting) >= batch_size:
        batch: list[int] = []
        seen: set[str] = set()
        rest: list[int] = []
        for i in waiting:
            if len(batch) < batch_size and not keys[i] & seen:
                batch.append(i)
                seen |= keys[i]
            else:
                rest.append(i)
        if len(batch) < batch_size:
            return
        yield batch
        waiting = rest
