"""LoRA targets are peft's ``all-linear``: the same projections the hand-kept table adapted, never
an output head, never the pooling head.

The table this replaced named the attention and MLP projections per architecture (decoders
q/k/v/o and gate/up/down, BERT query/key/value/dense); these tests keep that set as the
reference, so a backbone or peft change that adapts more or fewer layers fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer
from transformers import Qwen2ForCausalLM

from objectives.config.trial_config import ConfigError, LoraSettings
from objectives.model.embedding_model import EmbeddingModel
from objectives.model.lora import apply_lora
from tests.tiny_models import tiny_model_config

torch.set_num_threads(1)
# The replaced table: what each family adapted before all-linear.
DECODER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BERT_PROJECTIONS = ("query", "key", "value", "dense")


def _adapted(module: torch.nn.Module) -> set[str]:
    """Names (relative to the wrapped model) of the modules that carry a LoRA adapter."""
    return {
        name.removeprefix("base_model.model.")
        for name, child in module.named_modules()
        if isinstance(child, LoraLayer)
    }


def _linear_named(module: torch.nn.Module, suffixes: tuple[str, ...]) -> set[str]:
    return {
        name
        for name, child in module.named_modules()
        if isinstance(child, torch.nn.Linear) and name.rsplit(".", 1)[-1] in suffixes
    }


@pytest.mark.parametrize(
    ("backbone", "projections"),
    [
        ("tiny_decoder_dir", DECODER_PROJECTIONS),
        ("tiny_encoder_dir", BERT_PROJECTIONS),
        ("minilm", BERT_PROJECTIONS),
    ],
)
def test_all_linear_adapts_exactly_the_projections_the_table_named(
    backbone: str, projections: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    source = backbone if backbone == "minilm" else request.getfixturevalue(backbone)
    bare = EmbeddingModel.build(tiny_model_config(source, lora=None)).backbone
    expected = _linear_named(bare, projections)
    model = EmbeddingModel.build(tiny_model_config(source, lora=LoraSettings(r=2)))
    assert expected
    assert _adapted(model.backbone) == expected


def test_the_pooling_head_is_never_adapted_and_trains_in_full(tiny_decoder_dir: Path) -> None:
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, lora=LoraSettings(r=2)))
    assert not any(isinstance(child, LoraLayer) for child in model.head.modules())
    assert all(p.requires_grad for p in model.head.parameters())
    assert any(isinstance(child, torch.nn.Linear) for child in model.head.modules())


def test_all_linear_leaves_an_output_head_alone(tiny_decoder_dir: Path) -> None:
    with_head = Qwen2ForCausalLM.from_pretrained(tiny_decoder_dir)
    expected = _linear_named(with_head, DECODER_PROJECTIONS)  # before LoRA replaces them
    adapted = _adapted(apply_lora(with_head, LoraSettings(r=2)))
    assert "lm_head" not in adapted
    assert adapted == expected


def test_explicit_target_modules_override_all_linear(tiny_decoder_dir: Path) -> None:
    settings = LoraSettings(r=2, target_modules=("q_proj", "v_proj"))
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, lora=settings))
    assert {name.rsplit(".", 1)[-1] for name in _adapted(model.backbone)} == {"q_proj", "v_proj"}


def test_a_target_the_backbone_lacks_is_one_line_naming_the_field(tiny_decoder_dir: Path) -> None:
    settings = LoraSettings(r=2, target_modules=("no_such_proj",))
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules=\['no_such_proj'\]"):
        EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, lora=settings))
