"""Training pairs and the held-out dev slices behind the cheap intermediate signal.

Pairs come from a JSONL file in the format of ``shared/data/train/pairs.jsonl``
(``{"query", "positive", "negative"?}``), from a parquet or ``save_to_disk`` table, or from the HF
hub (online by default ``ONLINE_PAIRS``), its columns query|anchor, positive, negative?. Whatever their source,
a pair with any text that is also an evaluated text is dropped before training (``drop_overlap``):
a model trained on a test text would be scored on its own training data. Dev slices are drawn
with the fixed ``SUBSAMPLE_SEED``, so every trial of a study trains on the same pairs (only their
order depends on the trial seed) and is pruned on the same dev texts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objectives.config.trial_config import ConfigError, TrainConfig
from objectives.errors import one_line
from objectives.evaluation.mteb_tasks import (
    SUBSAMPLE_SEED,
    TaskDataError,
    pick_rows,
    read_jsonl,
    resolve_tasks_dir,
)

PAIRS_FILE = "train/pairs.jsonl"
DEV_STS_FILE = "sts/STSBenchmark/dev.jsonl"  # the validation split: never a test split
DEV_STS_ONLINE = ("mteb/stsbenchmark-sts", "validation")
# The training set with no tasks directory and no train.data: AllNLI's triplets (SNLI + MultiNLI;
# anchor, entailed positive, contradicting hard negative; 557,850 rows in train), the public
# hard-negative set sentence-transformers trains NLI embedders on.
ONLINE_PAIRS = "sentence-transformers/all-nli:triplet"


@dataclass(frozen=True)
class Pair:
    """A training example: the query must pick ``positive`` over every other candidate."""

    query: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class DevSlices:
    """Held-out texts for the intermediate signal (see ``objectives.training.dev_signal``).

    ``sts``: (sentence1, sentence2, gold score) pairs; ``retrieval``: held-out training pairs
    whose query must rank its own positive first among all their positives and negatives.
    """

    sts: list[tuple[str, str, float]] = field(default_factory=list)
    retrieval: list[Pair] = field(default_factory=list)


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to test texts for overlap."""
    return " ".join(text.lower().split())


def pairs_source(train: TrainConfig, tasks_dir: str | None) -> str:
    """``train.data``; else ``train/pairs.jsonl`` under the tasks directory; online (no tasks
    directory) ``ONLINE_PAIRS`` from the hub."""
    if train.data:
        return train.data
    root = resolve_tasks_dir(tasks_dir)
    return ONLINE_PAIRS if root is None else str(root / PAIRS_FILE)


def load_pairs(source: str, limit: int | None = None) -> list[Pair]:
    """Pairs from ``source``, in any form ``TrainConfig.data`` names.

    A JSONL file is read whole (the small project format). Any other source is a ``datasets``
    table: with ``limit`` a seeded sample of that many rows is drawn before any row becomes a
    Python object, so a cap on a hub set of half a million triplets costs only the rows kept.
    """
    path = Path(source).expanduser()
    if path.suffix == ".jsonl":
        rows = read_jsonl(path, {"query": str, "positive": str}, _check_negative)
        return [Pair(r["query"], r["positive"], r.get("negative") or None) for r in rows]
    return _table_pairs(_open_table(source, path), source, limit)


def _check_negative(row: dict) -> str | None:
    negative = row.get("negative")
    if negative is not None and not isinstance(negative, str):
        return f"field 'negative' has the wrong type ({type(negative).__name__})"
    return None


def _open_table(source: str, path: Path) -> Any:
    """The ``datasets.Dataset`` that ``source`` names: a local folder written by ``save_to_disk``,
    a parquet file or folder of them, else an HF hub set ``NAME[:SUBSET][@SPLIT]`` (split train)."""
    import datasets

    if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
        return _one_split(datasets.load_from_disk(str(path)), source)
    if path.suffix == ".parquet" or path.is_dir():
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not all(f.is_file() for f in files) or not files:
            raise TaskDataError(
                f"{path}: neither a parquet file nor a folder holding a save_to_disk dataset or "
                ".parquet files; fix train.data"
            )
        return datasets.Dataset.from_parquet([str(f) for f in files])
    if path.exists() or source.startswith(("/", ".", "~")):
        raise TaskDataError(
            f"{path}: train.data must be a .jsonl or .parquet file, a parquet or save_to_disk "
            "folder, or an HF dataset NAME[:SUBSET][@SPLIT]"
        )
    name, _, split = source.partition("@")
    name, _, subset = name.partition(":")
    try:
        return datasets.load_dataset(name, subset or None, split=split or "train")
    except Exception as exc:  # any load failure becomes one line naming the fix
        reason = one_line(exc, limit=200)
        raise ConfigError(
            f"cannot load training data {source!r} ({reason}); set train.data to a local file or "
            "folder, or an HF dataset NAME[:SUBSET][@SPLIT] reachable from here"
        ) from None


def _one_split(data: Any, source: str) -> Any:
    """A saved ``DatasetDict``'s train split (or its only one); a saved ``Dataset`` as it is."""
    if not hasattr(data, "keys"):
        return data
    if "train" in data or len(data) == 1:
        return data["train" if "train" in data else next(iter(data))]
    raise TaskDataError(
        f"{source}: a saved DatasetDict with splits {sorted(data)} and none named train; save "
        "the training split alone"
    )


def _table_pairs(data: Any, source: str, limit: int | None) -> list[Pair]:
    """(query|anchor, positive, negative?) text columns as pairs; ``limit`` rows at most."""
    columns = data.column_names
    queries = [c for c in ("query", "anchor") if c in columns]
    if len(queries) != 1 or "positive" not in columns:
        raise TaskDataError(
            f"{source}: training data need a query (or anchor) column, a positive and an optional "
            f"negative column; found columns {columns}"
        )
    names = [queries[0], "positive"] + (["negative"] if "negative" in columns else [])
    for name in names:
        if getattr(data.features[name], "dtype", None) not in ("string", "large_string"):
            raise TaskDataError(
                f"{source}: column '{name}' holds {data.features[name]}, not one text per row"
            )
    if limit is not None and limit < len(data):
        data = data.select(_seeded_sample(len(data), limit))
    rows = list(zip(*(data.select_columns(names)[c] for c in names), strict=True))
    empty = sum(1 for r in rows if not (r[0] and r[1]))
    if empty:
        raise TaskDataError(
            f"{source}: {empty} rows have no {names[0]} or no positive text; drop them first"
        )
    return [Pair(r[0], r[1], r[2] if len(r) > 2 and r[2] else None) for r in rows]


def drop_overlap(pairs: list[Pair], exclude: set[str]) -> tuple[list[Pair], int]:
    """(the pairs sharing no text with ``exclude``, how many were dropped).

    ``exclude`` holds the evaluated texts, normalised. A hub task is read before evaluation only
    when ``eval.max_texts`` caps it, so an uncapped hub task excludes nothing.
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
    return [pairs[i] for i in _seeded_sample(len(pairs), max_pairs)]


def _seeded_sample(size: int, count: int) -> list[int]:
    """``count`` of ``range(size)`` (all when fewer), in order, the same for every trial."""
    return pick_rows(size, count, random.Random(SUBSAMPLE_SEED))


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
    return [eligible[i] for i in _seeded_sample(len(eligible), count)]


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
                f"{len(pairs)} training pairs; lower train.batch_size (with train.negatives="
                "effective a batch is batch_size x grad_accum pairs)"
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


def token_budget_chunks(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices of texts grouped into forward passes of at most ``max_tokens`` padded tokens.

    Longest first, each pass takes texts while (its text count x its longest text) stays within
    the budget, so a pass pads only to similar lengths and as many short texts share one pass as
    fit; a text longer than the budget goes alone. Every index appears exactly once.
    """
    if max_tokens < 1:
        raise ConfigError(f"a token budget of {max_tokens} holds no text; use max_tokens >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= max_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks
