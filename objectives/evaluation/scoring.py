"""Score an embedding model on the MTEB subset with mteb's own evaluators.

mteb defines the scores (STS Spearman of cosine, Retrieval nDCG@10, Classification accuracy of its
logistic-regression protocol, Clustering V-measure); this module only adapts our model to mteb's
encoder protocol and caches embeddings, so each distinct text is encoded once per trial even when
several tasks share it (Banking77 classification and clustering, STS sentences repeated in pairs).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from objectives.evaluation.evidence import TaskEvidence, collect, record_draws
from objectives.evaluation.instructions import instructed_side, instruction_for, prompt_for
from objectives.evaluation.mteb_tasks import task_category


class TextEncoder(Protocol):
    """Anything that embeds texts: ``objectives.model.embedding_model.EmbeddingModel`` or an adapter."""

    def encode(
        self, texts: Sequence[str], batch_size: int, prompt: str | None = None
    ) -> np.ndarray: ...


@dataclass
class Evaluation:
    """Main score and category of each task, plus what the evaluation cost."""

    task_scores: dict[str, float]
    task_category: dict[str, str]
    seconds: float
    texts_encoded: int
    encode_seconds: float
    evidence: dict[str, TaskEvidence]
    # mteb's own TaskResult objects, for writing results in MTEB's format (objectives.evaluation.mteb_results).
    task_results: list[Any] = field(default_factory=list)


class CachedEncoder(AbsEncoder):
    """mteb's encoder protocol over a ``TextEncoder``, with a per-trial embedding cache.

    Without ``instructions`` (``None``) retrieval queries get ``query_prompt`` (as training
    queries do) and everything else is encoded bare. With a mapping (task name -> instruction
    overrides, possibly empty) every task gets its instruction (``objectives.evaluation.instructions``):
    symmetric tasks on both sides, retrieval on queries only. A text is cached under (prompt,
    text), so a prompt never leaks into another task's or a document's embedding.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        name: str,
        embed_dim: int | None,
        batch_size: int,
        query_prompt: str | None = None,
        instructions: Mapping[str, str] | None = None,
    ) -> None:
        self.model = encoder
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.instructions = instructions
        self.cache: dict[tuple[str | None, str], np.ndarray] = {}
        self.encode_seconds = 0.0
        self.mteb_model_meta = ModelMeta.create_empty(
            overwrites={
                "name": f"embedding-ablation/{name}",
                "revision": "trial",
                "embed_dim": embed_dim,
                "similarity_fn_name": ScoringFunction.COSINE,
                "framework": ["PyTorch"],
                "loader": None,
            }
        )

    @classmethod
    def for_model(
        cls, model: Any, batch_size: int, instructions: Mapping[str, str] | None = None
    ) -> CachedEncoder:
        """The encoder of an ``EmbeddingModel``, named after its backbone, with its query prompt."""
        return cls(
            model,
            name=Path(model.config.backbone).name,
            embed_dim=model.dim,
            batch_size=batch_size,
            query_prompt=model.config.query_prompt,
            instructions=instructions,
        )

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed a DataLoader of ``{"text": [...]}`` batches, encoding only unseen texts."""
        texts = [text for batch in inputs for text in batch["text"]]
        return self.embed(texts, self.prompt(task_metadata, prompt_type))

    def prompt(self, task_metadata: Any, prompt_type: PromptType | None) -> str | None:
        """The prompt of this task's side, from its name and type (see the class docstring)."""
        is_query = prompt_type == PromptType.query
        if self.instructions is None:
            return self.query_prompt if is_query else None
        if not instructed_side(task_metadata.type, is_query):
            return None
        return prompt_for(
            instruction_for(task_metadata.name, task_metadata.type, self.instructions)
        )

    def embed(self, texts: Sequence[str], prompt: str | None = None) -> np.ndarray:
        """Embeddings of ``texts`` (rows in order), through the cache."""
        missing = list(dict.fromkeys(t for t in texts if (prompt, t) not in self.cache))
        if missing:
            start = time.perf_counter()
            vectors = np.asarray(self.model.encode(missing, self.batch_size, prompt), np.float32)
            self.encode_seconds += time.perf_counter() - start
            self.cache.update({(prompt, t): v for t, v in zip(missing, vectors, strict=True)})
        return np.stack([self.cache[(prompt, t)] for t in texts])


def evaluate(encoder: CachedEncoder, tasks: Sequence[Any], *, progress: bool = True) -> Evaluation:
    """Run mteb's evaluators on ``tasks`` and return each task's main score.

    The result cache is off (``cache=None``): mteb's default cache would return a previous trial's
    scores for the same model name. Errors propagate, so a failed task is never recorded as a score.
    """
    import mteb

    start = time.perf_counter()
    encode_before = encoder.encode_seconds
    recorders = record_draws(tasks)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as predictions:
        # Small slices leave some labels without a prediction or training row: expected, not news.
        warnings.filterwarnings("ignore", module="sklearn")
        result = mteb.evaluate(
            encoder,
            list(tasks),
            cache=None,
            encode_kwargs={"batch_size": encoder.batch_size, "show_progress_bar": False},
            show_progress_bar=progress,
            raise_error=True,
            prediction_folder=predictions,
        )
        evidence = collect(tasks, Path(predictions), recorders)
    seconds = time.perf_counter() - start
    categories = {task.metadata.name: task_category(task) for task in tasks}
    scores = {r.task_name: float(r.get_score()) for r in result.task_results}
    missing = set(categories) - set(scores)
    if missing:
        raise RuntimeError(f"mteb returned no score for {sorted(missing)}")
    return Evaluation(
        task_scores={name: scores[name] for name in categories},
        task_category=categories,
        seconds=seconds,
        texts_encoded=len(encoder.cache),
        encode_seconds=encoder.encode_seconds - encode_before,
        evidence=evidence,
        task_results=list(result.task_results),
    )
