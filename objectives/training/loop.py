"""Contrastive fine-tuning: the paper's recipe (docs/PAPER.md, "Training recipe"), scaled by config.

AdamW over two parts (LoRA at ``train.lr``, pooling head at ``train.head_lr`` or ``train.lr``),
each split into decayed and undecayed parameters (biases, norm weights, latents and W get no weight
decay, as HF Trainer, which trained the paper's models, does for biases and norms), linear schedule
with warm-up, gradient accumulation over ``grad_accum`` batches and gradient-norm clipping.

With ``train.negatives=micro`` each micro-batch's loss sees only its own pairs as negatives; with
``effective`` one InfoNCE runs over the whole effective batch by gradient caching (GradCache,
Gao et al. 2021): every micro-batch is embedded without a graph, the loss's gradient with respect to
all embeddings is computed once, then each micro-batch is embedded again with a graph (replaying its
random state, so dropout draws the same masks) and back-propagates its slice of that gradient. The
negatives are those of the effective batch while memory stays that of one micro-batch (one pass,
with a token budget), for one extra forward pass per micro-batch.

A step's texts are tokenised once and embedded in forward passes (``forward_passes``): by default
one per micro-batch, its queries, positives and negatives together; with a token budget
(``max_tokens``) the texts are bucketed by length instead, each pass as many texts as fit the
budget in padded tokens. One pass pads every text to the longest of all, which on a CPU, where a
pass costs its padded tokens, is most of a step's work for short training texts; on a GPU a large
budget makes passes big enough to keep it busy. With cached negatives a pass may mix texts of any
pairs, since the loss is computed once over all of them, so the budget changes the cost of a
step and not its loss or gradients (only which dropout masks fall where).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from objectives.config.trial_config import ConfigError, TrainConfig
from objectives.model.embedding_model import EmbeddingModel
from objectives.training.loss import info_nce
from objectives.training.pairs import Pair, batches, token_budget_chunks


@dataclass
class TrainStats:
    """What training did and cost; ``seconds`` excludes time spent in ``on_step`` callbacks.

    ``tokens``: the real (unpadded) tokens of every text embedded, each counted once per step
    (not again for the cached path's second pass), for tokens/s and model FLOP utilisation.
    """

    steps: int
    pairs: int
    seconds: float
    last_loss: float
    tokens: int


def make_optimizer(
    model: EmbeddingModel, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with per-part learning rates, decay-exempt groups and the warm-up/decay schedule.

    Groups are named ``<part>`` (decayed) and ``<part>.no_decay``; empty groups are left out.
    """
    lrs = {"backbone": config.lr, "head": config.head_lr or config.lr}
    exempt = {id(p) for p in model.no_decay_parameters()}
    param_groups = []
    for part, params in model.parameter_groups().items():
        for suffix, decay in (("", config.weight_decay), (".no_decay", 0.0)):
            chosen = [p for p in params if (id(p) in exempt) == bool(suffix)]
            if chosen:
                param_groups.append(
                    {
                        "params": chosen,
                        "lr": lrs[part],
                        "weight_decay": decay,
                        "name": part + suffix,
                    }
                )
    if not param_groups:
        raise ConfigError(
            "nothing to train: the backbone is frozen (model.lora=None) and the pooling head has "
            "no parameters; enable LoRA or pick a trainable pooling kind"
        )
    # Fused AdamW on the CPU: one pass over each tensor instead of one per operation, which is
    # a large share of a wide head's step there; GPUs keep the default (foreach) kernels.
    optimizer = torch.optim.AdamW(param_groups, fused=model.device.type == "cpu" or None)
    schedule = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    return optimizer, schedule


def _enable_checkpointing(model: EmbeddingModel) -> None:
    """Activation checkpointing on the backbone, by the name the installed transformers uses."""
    backbone = model.backbone
    enable = getattr(backbone, "activation_checkpointing_enable", None)
    if enable is None:  # transformers < 5.x
        enable = backbone.gradient_checkpointing_enable
    enable({"use_reentrant": False})


def train(
    model: EmbeddingModel,
    pairs: list[Pair],
    config: TrainConfig,
    *,
    seed: int,
    query_prompt: str | None = None,
    on_step: Callable[[int], None] | None = None,
    progress: bool = True,
) -> TrainStats:
    """Run ``config.steps`` optimizer steps of InfoNCE on ``pairs``, each micro-batch's (or with
    ``config.max_tokens`` the step's) texts embedded in the passes of ``forward_passes``.
    ``on_step(step)`` runs after every ``config.eval_every`` steps and after the last one (once);
    an exception it raises (e.g. a pruning signal) stops training at once and propagates.
    """
    optimizer, schedule = make_optimizer(model, config)
    if config.gradient_checkpointing:
        _enable_checkpointing(model)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    cached = config.negatives == "effective" and config.grad_accum > 1
    # Cached: one draw is the whole effective batch, so no text repeats anywhere in a loss.
    stream = batches(pairs, config.batch_size * (config.grad_accum if cached else 1), seed)
    seconds, loss_value, tokens = 0.0, float("nan"), 0
    bar = tqdm(range(1, config.steps + 1), desc="train", unit="step", disable=not progress)
    for step in bar:
        start = time.perf_counter()
        model.train()
        if cached:
            loss_value, step_tokens = cached_backward(model, next(stream), config, query_prompt)
            tokens += step_tokens
        else:
            loss_value = 0.0
            for _ in range(config.grad_accum):
                loss, step_tokens = batch_loss(model, next(stream), config, query_prompt)
                loss = loss / config.grad_accum
                loss.backward()
                loss_value += loss.item()
                tokens += step_tokens
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - start
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if on_step is not None and (step % config.eval_every == 0 or step == config.steps):
            on_step(step)
    bar.close()
    pairs_seen = config.steps * config.grad_accum * config.batch_size
    return TrainStats(config.steps, pairs_seen, seconds, loss_value, tokens)


def cached_backward(
    model: EmbeddingModel,
    batch: list[Pair],
    config: TrainConfig,
    query_prompt: str | None,
) -> tuple[float, int]:
    """Accumulate the gradient of one InfoNCE over all of ``batch`` (the effective batch) into the
    parameters, one forward pass's graph at a time (the passes of ``forward_passes``).

    Returns the loss and the batch's real token count.
    """
    passes, count = _bucketed_passes(model, batch, config, query_prompt)
    states, outputs = [], []
    with torch.no_grad():
        for part in passes.inputs:
            states.append(_random_state(part["input_ids"].device))
            outputs.append(model(part))
    # A leaf standing in for the embeddings: the loss's gradient lands in its .grad.
    embeddings = passes.in_order(outputs).requires_grad_()
    loss = info_nce(*_split(embeddings, count), config.scale)
    loss.backward()
    for part, rows, state in zip(passes.inputs, passes.rows, states, strict=True):
        with _replayed(state):
            model(part).backward(embeddings.grad.index_select(0, rows))
    return loss.item(), passes.tokens


def batch_loss(
    model: EmbeddingModel,
    batch: list[Pair],
    config: TrainConfig,
    query_prompt: str | None,
) -> tuple[torch.Tensor, int]:
    """InfoNCE of one micro-batch (queries with the prompt against positives then hard
    negatives, embedded in the passes of ``forward_passes`` with their graphs kept) and the
    micro-batch's real token count."""
    passes, count = _bucketed_passes(model, batch, config, query_prompt)
    embeddings = passes.in_order([model(part) for part in passes.inputs])
    return info_nce(*_split(embeddings, count), config.scale), passes.tokens


def forward_passes(lengths: list[int], batch: list[Pair], config: TrainConfig) -> list[list[int]]:
    """Rows of a step's texts (``lengths``: their token counts, in the order queries, positives,
    hard negatives of ``batch``) embedded together, one list per forward pass; together they
    hold every row once.

    Without ``config.max_tokens``: each micro-batch of ``config.batch_size`` pairs, its queries,
    positives and hard negatives in one pass (on a GPU a step of short texts is bound by kernel
    launches, and one pass of 3B texts launches half as many as two). With it: the texts bucketed
    by length into passes of at most that many padded tokens (``token_budget_chunks``), so a pass
    pads only to similar lengths: less padding on a CPU (small budget), big passes on a GPU.
    """
    if config.max_tokens is not None:
        return token_budget_chunks(lengths, config.max_tokens)
    count, size = len(batch), config.batch_size
    negative_of: list[int | None] = []  # each pair's hard-negative row, if it has one
    row = 2 * count
    for pair in batch:
        has = config.hard_negatives and bool(pair.negative)
        negative_of.append(row if has else None)
        row += has
    passes = []
    for start in range(0, count, size):
        pairs = range(start, min(start + size, count))
        negatives = [negative_of[i] for i in pairs if negative_of[i] is not None]
        passes.append([*pairs, *(count + i for i in pairs), *negatives])
    return passes


@dataclass(frozen=True)
class Passes:
    """A step's forward passes, their index tensors all made before the first pass runs (an
    index copied to a GPU mid-step would wait for the work queued before it)."""

    inputs: list[dict[str, torch.Tensor]]  # each pass's rows, trimmed to its longest text
    rows: list[torch.Tensor]  # each pass's row numbers
    order: torch.Tensor  # row r's embedding is row order[r] of the passes' outputs, concatenated
    tokens: int  # the real tokens of all rows

    def in_order(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """The passes' embeddings, one per row in row order."""
        return torch.cat(outputs).index_select(0, self.order)


def _bucketed_passes(
    model: EmbeddingModel,
    batch: list[Pair],
    config: TrainConfig,
    query_prompt: str | None,
) -> tuple[Passes, int]:
    """A batch's texts tokenised at once and split into ``forward_passes``; and its pair count."""
    inputs, count = _step_inputs(model, batch, config, query_prompt)
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    plan = forward_passes(lengths, batch, config)
    device, padded = inputs["input_ids"].device, inputs["input_ids"].shape[1]
    left = model.tokenizer.padding_side == "left"
    parts, rows = [], []
    for chosen in plan:
        index = torch.tensor(chosen, device=device)
        width = max(lengths[i] for i in chosen)
        columns = slice(padded - width, None) if left else slice(0, width)
        parts.append(
            {key: value.index_select(0, index)[:, columns] for key, value in inputs.items()}
        )
        rows.append(index)
    order = [0] * len(lengths)
    for position, row in enumerate(r for chosen in plan for r in chosen):
        order[row] = position
    return Passes(parts, rows, torch.tensor(order, device=device), sum(lengths)), count


@dataclass(frozen=True)
class RandomState:
    """The generators dropout draws from: the CPU's and, for a model on a GPU, that device's."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device


def _random_state(device: torch.device) -> RandomState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return RandomState(torch.get_rng_state(), cuda, device)


@contextmanager
def _replayed(state: RandomState) -> Iterator[None]:
    """Run the block from ``state`` (the same dropout masks as when it was taken), then put the
    generators back, so a replay leaves the random stream after it untouched."""
    devices = [state.device] if state.cuda is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state.cpu)
        if state.cuda is not None:
            torch.cuda.set_rng_state(state.cuda, state.device)
        yield


def _step_inputs(
    model: EmbeddingModel, batch: list[Pair], config: TrainConfig, query_prompt: str | None
) -> tuple[dict[str, torch.Tensor], int]:
    """All of a batch's texts tokenised at once (queries with the prompt, then positives, then
    hard negatives) and its pair count."""
    negatives = [p.negative for p in batch if p.negative] if config.hard_negatives else []
    texts = [p.query for p in batch] + [p.positive for p in batch] + negatives
    return model.tokenize(texts, query_prompt, prompted=len(batch)), len(batch)


def _split(embeddings: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(queries, positives, hard negatives) of the rows of a ``_step_inputs`` of ``count`` pairs."""
    return embeddings[:count], embeddings[count : 2 * count], embeddings[2 * count :]
