"""The paper's five model variants (docs/PAPER.md, "The five model variants") as config overrides.

Plans name a variant (``model5``) instead of repeating its fields; ``--base model3`` swaps the base of
the multi-layer studies to the causal variant.
"""

from __future__ import annotations

from typing import Any

from objectives.config.trial_config import ConfigError, TrialConfig, override

VARIANTS: dict[str, dict[str, Any]] = {
    "model1": {"model.pooling.kind": "eos", "model.attention": "causal"},
    "model2": {"model.pooling.kind": "last_layer", "model.attention": "causal"},
    "model3": {"model.pooling.kind": "multi_layer", "model.attention": "causal"},
    "model4": {"model.pooling.kind": "last_layer", "model.attention": "bidirectional"},
    "model5": {"model.pooling.kind": "multi_layer", "model.attention": "bidirectional"},
}


def apply_variant(config: TrialConfig, name: str) -> TrialConfig:
    """Return ``config`` turned into paper variant ``name`` (model1..model5)."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown model variant '{name}'; choose one of {sorted(VARIANTS)}")
    return override(config, VARIANTS[name])
