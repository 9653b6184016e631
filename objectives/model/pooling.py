"""Pooling heads: how a backbone's token states become one vector (docs/PAPER.md, "The trainable
pooling head").

Each head is an ``nn.Module`` reading a features dict (``last_hidden_state``, ``attention_mask`` and,
when the head's ``needs_hidden_states`` is true, ``hidden_states`` with index 0 the embedding output
and index l transformer layer l). Heads return unnormalised (B, d) vectors; the model L2-normalises.

Heads compute in float32 whatever the backbone's dtype: states are cast where they enter the head
(after picking the EOS token or per layer, so no float32 copy of every layer's states exists). A
bf16 head under AdamW at lr 1e-5 barely moves, as updates round to zero; the released code also
keeps its head in float32.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from objectives.config.trial_config import Attention, ConfigError, PoolingConfig
from objectives.model.layers import resolve_layers

Features = dict[str, torch.Tensor | tuple[torch.Tensor, ...]]
# The ``PoolingConfig`` fields a latent resampler is built from.
RESAMPLER_FIELDS = ("n_latents", "heads", "head_dim", "mlp_ratio")


def head_precision(states: torch.Tensor) -> torch.Tensor:
    """``states`` in at least float32: bf16 states are cast, float64 ones (exact tests) kept."""
    return states.to(torch.promote_types(states.dtype, torch.float32))


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token; right and left padding alike."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * positions).argmax(dim=1)


def eos_states(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) -> (B, d) float32: the state of the last real (EOS) token of each row."""
    rows = torch.arange(states.shape[0], device=states.device)
    return head_precision(states[rows, last_token_index(attention_mask)])


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) -> (B, d) float32: the mean over real tokens, padding excluded."""
    states = head_precision(states)
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


SUMMARIES = {"eos": eos_states, "mean": masked_mean}
Algebra = Literal["tokens", "values", "latents"]
# Head parameters that, like biases and LayerNorm weights, get no weight decay: the latents and W
# are learned embeddings, which decay would pull towards zero rather than regularise.
NO_DECAY = ("latents", "layer_weights")


class LatentResampler(nn.Module):
    """Perceiver-style resampler: trainable latents cross-attend to the inputs, then a GEGLU FFN.

    Pre-LayerNorm on latents and inputs; ``heads`` heads of width ``head_dim`` (inner width
    heads x head_dim) projected back to ``dim``; residuals around both blocks; mean over latents.
    As the released code: the attention projections have no bias, the feed-forward layers have.

    The attention is linear in its projections, so the same function can be computed three ways
    (``Algebra``), and ``algebra=None`` picks per call the one whose intermediate is smallest:

    - ``tokens``: the textbook form, every input projected to keys and values of the inner width;
    - ``values``: keys per input, but each head's values projected to ``dim`` before attention
      (``to_out`` folded into them), so the (batch, latents, heads x head_dim) tensor, alone 13 GB
      per 32 texts for the 64x4096 arm with 768 latents, never exists: for few inputs (layers);
    - ``latents``: nothing projected per input. Scores are x . (W_k,h^T q_h) and the output is
      W_out,h W_v,h (sum_s a_s x_s): the inputs are pooled per head in ``dim`` and one (dim, dim)
      map per head replaces both projections, so the cost follows the latents: for few latents
      over many inputs (all token states of a text).
    """

    def __init__(self, dim: int, n_latents: int, heads: int, head_dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.algebra: Algebra | None = None  # None: the smallest intermediate, per call
        inner = heads * head_dim
        self.latents = nn.Parameter(torch.randn(n_latents, dim))
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_inputs = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, 2 * dim * mlp_ratio)
        self.ffn_out = nn.Linear(dim * mlp_ratio, dim)

    @property
    def inner_width(self) -> int:
        return self.heads * self.head_dim

    def pick_algebra(self, batch: int, length: int) -> Algebra:
        """The form with the fewest intermediate elements for ``batch`` rows of ``length`` inputs."""
        latents, dim = self.latents.shape
        per_input = 2 * batch * length * self.inner_width  # keys and values of every input
        sizes: dict[Algebra, int] = {
            "tokens": per_input + batch * latents * self.inner_width,  # + attended latents
            "values": per_input + batch * self.heads * length * dim,  # + values in dim
            "latents": batch * self.heads * latents * dim + self.heads * dim * dim,
        }
        return min(sizes, key=sizes.__getitem__)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, d) inputs, optional (B, S) key padding mask (true = real) -> (B, d)."""
        batch, length, dim = inputs.shape
        heads, head_dim = self.heads, self.head_dim
        algebra = self.algebra or self.pick_algebra(batch, length)
        # The latents are the same for every row: project them once, never per row. The attention
        # is written out because it is small (latents x inputs per head), while a fused kernel
        # would need the queries repeated per row (heads x head_dim is wider than any kernel's).
        q = self.to_q(self.norm_latents(self.latents)).view(-1, heads, head_dim)
        x = self.norm_inputs(inputs)
        key_weight, value_weight = (
            w.view(heads, head_dim, dim) for w in self.to_kv.weight.chunk(2, dim=0)
        )
        out_weight = self.to_out.weight.view(dim, heads, head_dim)
        if algebra == "latents":
            queries = torch.einsum("nhk,hkd->nhd", q, key_weight)  # W_k,h^T q_h
            scores = torch.einsum("nhd,bsd->bhns", queries, x)
        else:
            k, v = self.to_kv(x).chunk(2, dim=-1)
            k = k.view(batch, length, heads, head_dim)
            v = v.view(batch, length, heads, head_dim)
            scores = torch.einsum("nhk,bshk->bhns", q, k)
        scores = head_precision(scores) * head_dim**-0.5
        if mask is not None:
            scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        weights = scores.softmax(dim=-1).to(x.dtype)
        if algebra == "latents":
            pooled = torch.einsum("bhns,bsd->bhnd", weights, x)
            maps = torch.einsum("ehk,hkd->hed", out_weight, value_weight)  # W_out,h W_v,h
            projected = torch.einsum("bhnd,hed->bne", pooled, maps)
        elif algebra == "values":
            values = torch.einsum("bshk,dhk->bhsd", v, out_weight)
            projected = torch.einsum("bhns,bhsd->bnd", weights, values)
        else:
            attended = torch.einsum("bhns,bshk->bnhk", weights, v)
            projected = self.to_out(attended.reshape(batch, -1, self.inner_width))
        x = self.latents + projected
        value, gate = self.ffn_in(self.norm_ffn(x)).chunk(2, dim=-1)
        x = x + self.ffn_out(value * F.gelu(gate))
        return x.mean(dim=1)


class EosPooling(nn.Module):
    """The last layer's state of the last real token (the EOS a decoder tokenizer appends)."""

    needs_hidden_states = False
    # The PoolingConfig fields (besides kind) the head is built from: two configs that differ
    # only in others build the same head (search.arms dedups arms by it).
    config_fields: tuple[str, ...] = ()

    def forward(self, features: Features) -> torch.Tensor:
        return eos_states(features["last_hidden_state"], features["attention_mask"])


class MeanPooling(nn.Module):
    """The masked mean of the last layer's token states (sentence-transformers' default)."""

    needs_hidden_states = False
    config_fields: tuple[str, ...] = ()

    def forward(self, features: Features) -> torch.Tensor:
        return masked_mean(features["last_hidden_state"], features["attention_mask"])


class LastLayerPooling(nn.Module):
    """Resampler over the last layer: the EOS state alone when causal (only it has seen the whole
    text), all real token states when bidirectional."""

    needs_hidden_states = False
    config_fields = RESAMPLER_FIELDS

    def __init__(self, resampler: LatentResampler, causal: bool) -> None:
        super().__init__()
        self.resampler = resampler
        self.causal = causal

    def forward(self, features: Features) -> torch.Tensor:
        states, mask = features["last_hidden_state"], features["attention_mask"]
        if self.causal:
            return self.resampler(eos_states(states, mask).unsqueeze(1))
        return self.resampler(head_precision(states), mask)


class MultiLayerPooling(nn.Module):
    """Resampler over one summary vector per selected layer, plus the layer-weight matrix W."""

    needs_hidden_states = True
    config_fields = (
        *RESAMPLER_FIELDS,
        "layers",
        "layer_summary",
        "layer_weights",
        "layer_weight_std",
    )

    def __init__(
        self,
        resampler: LatentResampler,
        layers: tuple[int, ...],
        summary: str,
        dim: int,
        layer_weights: bool,
        layer_weight_std: float,
    ) -> None:
        super().__init__()
        self.resampler = resampler
        self.layers = layers
        self.summary = summary
        # One learned vector per selected layer, N(0, std) as the released nn.Embedding (std 1):
        # a small std would leave W almost no effect on the resampler's normalised inputs.
        self.layer_weights = (
            nn.Parameter(torch.randn(len(layers), dim) * layer_weight_std)
            if layer_weights
            else None
        )

    def forward(self, features: Features) -> torch.Tensor:
        hidden, mask = features["hidden_states"], features["attention_mask"]
        summarise = SUMMARIES[self.summary]
        stacked = torch.stack([summarise(hidden[layer], mask) for layer in self.layers], dim=1)
        if self.layer_weights is not None:
            stacked = stacked + self.layer_weights
        return self.resampler(stacked)


HEADS: dict[str, type[nn.Module]] = {
    "eos": EosPooling,
    "mean": MeanPooling,
    "last_layer": LastLayerPooling,
    "multi_layer": MultiLayerPooling,
}


def build_pooling(
    config: PoolingConfig, dim: int, num_layers: int, attention: Attention
) -> nn.Module:
    """The pooling head ``config`` describes, for a backbone of width ``dim`` and ``num_layers``."""
    if config.kind == "eos":
        return EosPooling()
    if config.kind == "mean":
        return MeanPooling()
    resampler = LatentResampler(
        dim, config.n_latents, config.heads, config.head_dim, config.mlp_ratio
    )
    causal = attention == "causal"
    if config.kind == "last_layer":
        return LastLayerPooling(resampler, causal)
    if config.kind == "multi_layer":
        summary = config.layer_summary or ("eos" if causal else "mean")
        layers = resolve_layers(config.layers, num_layers)
        return MultiLayerPooling(
            resampler, layers, summary, dim, config.layer_weights, config.layer_weight_std
        )
    raise ConfigError(
        f"unknown model.pooling.kind {config.kind!r}; use eos, mean, last_layer or multi_layer"
    )
