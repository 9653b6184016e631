"""Pooling heads: EOS picks the last real token, the resampler's knobs change exactly what they name,
and each head reads only what docs/PAPER.md says it reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from objectives.config.trial_config import PoolingConfig
from objectives.model.embedding_model import EmbeddingModel
from objectives.model.pooling import (
    LatentResampler,
    MultiLayerPooling,
    build_pooling,
    last_token_index,
    masked_mean,
)
from tests.tiny_models import DECODER_EOS, tiny_model_config, tiny_qwen2_dir

torch.set_num_threads(1)
DIM = 16


def test_last_token_index_right_and_left_padding() -> None:
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_eos_pooling_reads_the_appended_eos_state(padding_side: str, tmp_path: Path) -> None:
    path = tiny_qwen2_dir(tmp_path, num_layers=2, padding_side=padding_side)
    model = EmbeddingModel.build(
        tiny_model_config(path, attention="causal", pooling=PoolingConfig("eos"), lora=None)
    )
    batch = model.tokenize(["a cat", "a much longer sentence about a cat on a mat"])
    eos_id = model.tokenizer.convert_tokens_to_ids(DECODER_EOS)
    with torch.no_grad():
        states = model.backbone(**batch).last_hidden_state
        embeddings = model(batch)
    lengths = batch["attention_mask"].sum(dim=1)
    for row, length in enumerate(lengths.tolist()):
        last = length - 1 if padding_side == "right" else batch["input_ids"].shape[1] - 1
        assert batch["input_ids"][row, last] == eos_id
        expected = torch.nn.functional.normalize(states[row, last], dim=-1)
        torch.testing.assert_close(embeddings[row], expected)


def test_layer_weights_off_removes_exactly_w() -> None:
    config = PoolingConfig(layers="last_third", heads=2, head_dim=8, n_latents=4)
    with_w = build_pooling(config, DIM, 6, "bidirectional")
    without_w = build_pooling(replace(config, layer_weights=False), DIM, 6, "bidirectional")
    shapes_on = {name: tuple(p.shape) for name, p in with_w.named_parameters()}
    shapes_off = {name: tuple(p.shape) for name, p in without_w.named_parameters()}
    assert {k: v for k, v in shapes_on.items() if k not in shapes_off} == {
        "layer_weights": (2, DIM)
    }
    assert set(shapes_off) < set(shapes_on)


@pytest.mark.parametrize(("heads", "head_dim"), [(2, 8), (4, 16), (8, 4)])
def test_heads_times_head_dim_is_the_inner_width(heads: int, head_dim: int) -> None:
    base = PoolingConfig(kind="last_layer", heads=1, head_dim=1, n_latents=4)
    head = build_pooling(replace(base, heads=heads, head_dim=head_dim), DIM, 6, "causal")
    small = build_pooling(base, DIM, 6, "causal")
    inner = heads * head_dim
    resampler = head.resampler
    assert resampler.inner_width == inner
    assert resampler.to_q.out_features == inner
    assert resampler.to_kv.out_features == 2 * inner
    assert resampler.to_out.in_features == inner
    count = sum(p.numel() for p in head.parameters())
    # q, k, v and the output projection each hold DIM x inner weights; nothing else depends on it.
    assert count - sum(p.numel() for p in small.parameters()) == 4 * DIM * (inner - 1)


@pytest.mark.parametrize("algebra", ["tokens", "values", "latents"])
def test_resampler_ignores_padded_inputs(algebra: str) -> None:
    torch.manual_seed(0)
    resampler = LatentResampler(DIM, n_latents=3, heads=2, head_dim=4, mlp_ratio=2)
    resampler.algebra = algebra
    real = torch.randn(1, 3, DIM)
    padded = torch.cat([real, 100 * torch.randn(1, 2, DIM)], dim=1)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    torch.testing.assert_close(resampler(padded, mask), resampler(real))
    assert not torch.allclose(resampler(padded), resampler(real))


@pytest.mark.parametrize("algebra", ["tokens", "values", "latents"])
def test_every_algebra_is_the_textbook_cross_attention_with_its_gradients(algebra: str) -> None:
    """Wide heads (head_dim > d), padded rows, float64: outputs and every gradient agree."""
    torch.manual_seed(0)
    resampler = LatentResampler(DIM, n_latents=5, heads=3, head_dim=2 * DIM, mlp_ratio=2).double()
    inputs = torch.randn(2, 4, DIM, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])

    def gradients(run) -> list[torch.Tensor]:
        resampler.zero_grad()
        leaf = inputs.clone().requires_grad_()
        run(leaf).square().sum().backward()
        return [leaf.grad] + [p.grad.clone() for p in resampler.parameters()]

    def chosen(leaf: torch.Tensor) -> torch.Tensor:
        resampler.algebra = algebra
        return resampler(leaf, mask)

    expected = _reference_resampler(resampler, inputs, mask)
    torch.testing.assert_close(chosen(inputs), expected, rtol=1e-12, atol=1e-12)
    textbook = gradients(lambda leaf: _reference_resampler(resampler, leaf, mask))
    for got, want in zip(gradients(chosen), textbook, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_the_picked_algebra_follows_the_smaller_side() -> None:
    """Few latents over many tokens: nothing per token; many latents over few layers: values in
    dim; the default picks by the call's shape."""
    few_latents = LatentResampler(DIM, n_latents=2, heads=4, head_dim=64, mlp_ratio=2)
    assert few_latents.pick_algebra(batch=8, length=64) == "latents"
    many_latents = LatentResampler(DIM, n_latents=256, heads=4, head_dim=64, mlp_ratio=2)
    assert many_latents.pick_algebra(batch=8, length=3) == "values"
    narrow = LatentResampler(DIM, n_latents=256, heads=4, head_dim=2, mlp_ratio=2)
    assert narrow.pick_algebra(batch=8, length=64) == "tokens"


def _reference_resampler(
    r: LatentResampler, inputs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The resampler as textbook multi-head cross-attention (torch's fused attention per row)."""
    batch = inputs.shape[0]
    q = r.to_q(r.norm_latents(r.latents)).expand(batch, -1, -1)
    k, v = r.to_kv(r.norm_inputs(inputs)).chunk(2, dim=-1)
    q, k, v = (t.reshape(batch, t.shape[1], r.heads, r.head_dim).transpose(1, 2) for t in (q, k, v))
    attended = F.scaled_dot_product_attention(q, k, v, mask.bool()[:, None, None, :])
    x = r.latents + r.to_out(attended.transpose(1, 2).reshape(batch, -1, r.inner_width))
    value, gate = r.ffn_in(r.norm_ffn(x)).chunk(2, dim=-1)
    return (x + r.ffn_out(value * F.gelu(gate))).mean(dim=1)


def _features(batch: int = 2, length: int = 5, layers: int = 6) -> dict:
    torch.manual_seed(1)
    hidden = tuple(torch.randn(batch, length, DIM) for _ in range(layers + 1))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 3:] = 0
    return {"hidden_states": hidden, "last_hidden_state": hidden[-1], "attention_mask": mask}


def _perturb_all_but_eos(features: dict) -> dict:
    """The same features with every token state except each row's last real one replaced."""
    keep = torch.zeros_like(features["attention_mask"], dtype=torch.bool)
    keep[torch.arange(keep.shape[0]), last_token_index(features["attention_mask"])] = True
    hidden = tuple(
        torch.where(keep[..., None], h, torch.randn_like(h)) for h in features["hidden_states"]
    )
    return {**features, "hidden_states": hidden, "last_hidden_state": hidden[-1]}


@pytest.mark.parametrize("kind", ["last_layer", "multi_layer"])
def test_causal_heads_read_only_the_eos_state(kind: str) -> None:
    config = PoolingConfig(kind=kind, heads=2, head_dim=4, n_latents=3, mlp_ratio=2)
    features = _features()
    perturbed = _perturb_all_but_eos(features)
    causal = build_pooling(config, DIM, 6, "causal")
    torch.testing.assert_close(causal(features), causal(perturbed))
    bidirectional = build_pooling(config, DIM, 6, "bidirectional")
    assert not torch.allclose(bidirectional(features), bidirectional(perturbed))


def test_layer_summary_follows_attention_unless_set() -> None:
    config = PoolingConfig(heads=2, head_dim=4, n_latents=3)
    assert build_pooling(config, DIM, 6, "causal").summary == "eos"
    assert build_pooling(config, DIM, 6, "bidirectional").summary == "mean"
    explicit = replace(config, layer_summary="mean")
    head = build_pooling(explicit, DIM, 6, "causal")
    assert isinstance(head, MultiLayerPooling) and head.summary == "mean"


def test_mean_pooling_is_masked() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert masked_mean(states, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize("std", [1.0, 0.02])
def test_w_starts_normal_with_the_configured_std(std: float) -> None:
    config = PoolingConfig(heads=2, head_dim=4, n_latents=3, layer_weight_std=std)
    head = build_pooling(config, 256, 6, "bidirectional")
    weights = head.layer_weights.detach()
    assert weights.shape == (6, 256)
    assert abs(weights.mean().item()) < 0.1 * std
    assert weights.std().item() == pytest.approx(std, rel=0.1)


def test_feed_forward_layers_have_biases_and_attention_projections_none() -> None:
    resampler = LatentResampler(DIM, n_latents=3, heads=2, head_dim=4, mlp_ratio=2)
    assert resampler.ffn_in.bias.shape == (2 * 2 * DIM,)
    assert resampler.ffn_out.bias.shape == (DIM,)
    assert all(layer.bias is None for layer in (resampler.to_q, resampler.to_kv, resampler.to_out))


@pytest.mark.parametrize("kind", ["eos", "mean", "last_layer", "multi_layer"])
def test_heads_compute_in_float32_from_bf16_states(kind: str) -> None:
    config = PoolingConfig(kind=kind, heads=2, head_dim=4, n_latents=3, mlp_ratio=2)
    head = build_pooling(config, DIM, 6, "bidirectional")
    features = _features()
    low = {
        **features,
        "hidden_states": tuple(h.bfloat16() for h in features["hidden_states"]),
        "last_hidden_state": features["last_hidden_state"].bfloat16(),
    }
    assert head(low).dtype == torch.float32
