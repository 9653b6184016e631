"""Attention modes really change the mask: a later token reaches an earlier position's state only
under bidirectional attention, and padding stays masked in both modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from objectives.config.trial_config import ConfigError, PoolingConfig
from objectives.model.backbone import AttentionModeError, check_attention_mode, load_backbone
from objectives.model.embedding_model import EmbeddingModel
from tests.tiny_models import tiny_model_config, tiny_mpnet_dir, tiny_qwen2_dir

torch.set_num_threads(1)


def _states_at_prefix(model: EmbeddingModel, last_token: int) -> torch.Tensor:
    """Every layer's states at positions 0..3 of [5, 6, 7, 8, last_token], in a batch where this
    row is padded by a longer second row."""
    rows = [[5, 6, 7, 8, last_token], [9, 10, 11, 12, 13, 14, 15]]
    batch = model._pad(rows)
    with torch.no_grad():
        out = model.backbone(**batch, output_hidden_states=True)
    return torch.stack([h[0, :4] for h in out.hidden_states[1:]])


@pytest.mark.parametrize("backbone", ["tiny_qwen2", "tiny_bert", "minilm"])
def test_later_token_changes_earlier_states_only_when_bidirectional(
    backbone: str, tiny_decoder_dir: Path, tiny_encoder_dir: Path
) -> None:
    name = {"tiny_qwen2": tiny_decoder_dir, "tiny_bert": tiny_encoder_dir}.get(backbone, backbone)
    for attention, should_change in (("causal", False), ("bidirectional", True)):
        model = EmbeddingModel.build(tiny_model_config(name, attention=attention, lora=None))
        same_prefix = _states_at_prefix(model, 20), _states_at_prefix(model, 21)
        changed = not torch.allclose(*same_prefix, atol=1e-6)
        assert changed is should_change, f"{backbone} {attention}"


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_padding_does_not_change_an_embedding(
    attention: str, padding_side: str, tmp_path: Path
) -> None:
    """A text embedded alone equals the same text padded beside a longer one (mask + positions)."""
    path = tiny_qwen2_dir(tmp_path, num_layers=2, padding_side=padding_side)
    for kind in ("eos", "mean", "last_layer", "multi_layer"):
        pooling = PoolingConfig(kind=kind, heads=2, head_dim=8, n_latents=4, mlp_ratio=2)
        model = EmbeddingModel.build(tiny_model_config(path, attention=attention, pooling=pooling))
        short, long = "a cat", "a much longer sentence about a cat on a mat"
        alone = model.encode([short])
        padded = model.encode([short, long], batch_size=2)[:1]
        np.testing.assert_allclose(alone, padded, atol=1e-5, err_msg=kind)


def test_minilm_padding_is_masked_in_both_modes() -> None:
    for attention in ("causal", "bidirectional"):
        model = EmbeddingModel.build(
            tiny_model_config(
                "minilm", attention=attention, lora=None, pooling=PoolingConfig("mean")
            )
        )
        alone = model.encode(["a cat"])
        padded = model.encode(["a cat", "a much longer sentence about a cat"], batch_size=2)[:1]
        np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_mpnet_ignores_is_decoder_so_a_causal_arm_fails_before_training(tmp_path: Path) -> None:
    """MPNet has no causal switch: a 'causal' MPNet would be the bidirectional model relabelled."""
    path = tiny_mpnet_dir(tmp_path)
    with pytest.raises(AttentionModeError) as info:
        EmbeddingModel.build(tiny_model_config(path, attention="causal", lora=None))
    message = str(info.value)
    assert str(path) in message and "is not causal" in message and "\n" not in message
    assert isinstance(info.value, ConfigError)
    EmbeddingModel.build(tiny_model_config(path, attention="bidirectional", lora=None))


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_bert_holds_both_modes_padded_and_unpadded(attention: str, tiny_encoder_dir: Path) -> None:
    backbone, tokenizer = load_backbone(tiny_model_config(tiny_encoder_dir, attention=attention))
    check_attention_mode(backbone, tokenizer, "tiny-bert", attention)
    other = "bidirectional" if attention == "causal" else "causal"
    with pytest.raises(AttentionModeError, match=f"'tiny-bert' is not {other}: in an unpadded"):
        check_attention_mode(backbone, tokenizer, "tiny-bert", other)
