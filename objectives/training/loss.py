"""InfoNCE with in-batch positives and hard negatives, as in the paper's training recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    scale: float = 20.0,
) -> torch.Tensor:
    """Cross-entropy of each query picking its own positive (row i) among all candidates.

    Candidates are every positive of the batch followed by every hard negative (any number,
    including none); similarity is cosine x ``scale`` (20 = temperature 0.05).
    """
    candidates = positives if negatives is None else torch.cat([positives, negatives])
    logits = scale * F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T
    target = torch.arange(len(queries), device=queries.device)
    # At least float32 (bf16 logits would round the loss), float64 kept for exact tests.
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), target)
