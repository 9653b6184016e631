"""LoRA on the backbone (docs/PAPER.md: r 16, alpha 32, dropout 0.1 on the attention and MLP
projections).

The targets are peft's ``"all-linear"``: every linear layer of the backbone except an output head.
``load_backbone`` returns the bare transformer (``AutoModel``: no LM head, BERT's [CLS] pooler
removed), so all-linear is exactly the attention and MLP projections on Qwen2/Mistral/Llama
decoders (q/k/v/o, gate/up/down) and BERT-type encoders (query/key/value/dense), with no table of
names per architecture to keep up. LoRA wraps the backbone alone, so the pooling head is never
adapted: it trains in full. An explicit ``model.lora.target_modules`` overrides the choice.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from objectives.config.trial_config import ConfigError, LoraSettings
from objectives.errors import one_line

ALL_LINEAR = "all-linear"


def apply_lora(model: nn.Module, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; its own weights are frozen."""
    targets = list(settings.target_modules) if settings.target_modules else ALL_LINEAR
    lora_config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        reason = one_line(exc, limit=200)
        raise ConfigError(f"model.lora.target_modules={targets}: {reason}") from None


def load_lora(model: nn.Module, adapter_dir: str | Path) -> PeftModel:
    """Wrap ``model`` with the trainable adapter saved by ``PeftModel.save_pretrained``."""
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
