"""LoRA on the backbone (PAPER.md: r 16, alpha 32, dropout 0.1 on the attention and MLP projections).

The target projections are found per architecture from the module names, so one config works for
Qwen2/Mistral/Llama decoders and BERT-type encoders; an explicit ``model.lora.target_modules``
overrides the choice.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from objectives.config import ConfigError, LoraSettings

# Decoder LLMs: q/k/v/o attention and gate/up/down MLP projections; BERT: query/key/value/dense.
ARCHITECTURE_TARGETS = (
    ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    ("query", "key", "value", "dense"),
)


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """The LoRA target module names of ``model``'s architecture."""
    linear_names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }
    for candidates in ARCHITECTURE_TARGETS:
        found = tuple(name for name in candidates if name in linear_names)
        if found:
            return found
    raise ConfigError(
        f"no known LoRA targets in a {type(model).__name__}; set model.lora.target_modules to some "
        f"of its linear layers: {sorted(linear_names)[:12]}"
    )


def apply_lora(model: nn.Module, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; its own weights are frozen."""
    targets = settings.target_modules or default_targets(model)
    lora_config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"model.lora.target_modules={list(targets)}: {reason}") from None


def load_lora(model: nn.Module, adapter_dir: str | Path) -> PeftModel:
    """Wrap ``model`` with the trainable adapter saved by ``PeftModel.save_pretrained``."""
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
