"""Configuration as data: dotted overrides, type coercion, round trips and clear errors."""

from __future__ import annotations

import pytest

from objectives.config import ConfigError, TrialConfig, from_dict, override, to_dict
from objectives.presets import PRESETS, preset_config
from objectives.variants import VARIANTS, apply_variant


def test_override_coerces_cli_strings_to_field_types() -> None:
    config = override(
        TrialConfig(),
        {
            "model.pooling.heads": "8",
            "train.lr": "3e-4",
            "model.pooling.layer_weights": "off",
            "eval.tasks": "SICK-R,STS14",
            "model.lora": "none",
            "model.pooling.layers": "top_k:4",
        },
    )
    assert config.model.pooling.heads == 8
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model.pooling.layer_weights is False
    assert config.eval.tasks == ("SICK-R", "STS14")
    assert config.model.lora is None
    assert config.model.pooling.layers == "top_k:4"
    assert TrialConfig().model.pooling.heads == 32  # the default is untouched


def test_override_can_rebuild_a_removed_section() -> None:
    config = override(TrialConfig(), {"model.lora": None})
    config = override(config, {"model.lora.r": 8})
    assert (
        config.model.lora is not None and config.model.lora.r == 8 and config.model.lora.alpha == 32
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model.pooling.hedas": 8}, "unknown config field 'model.pooling.hedas'"),
        ({"model.attention": "sideways"}, "must be one of ['causal', 'bidirectional']"),
        ({"train.steps": "many"}, "'train.steps' must be int"),
        ({"train.steps": 2.5}, "must be an integer"),
        ({"model.pooling.layer_weights": "maybe"}, "must be true/false"),
    ],
)
def test_bad_overrides_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        override(TrialConfig(), changes)
    assert message in str(info.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json_dicts(name: str) -> None:
    config = preset_config(name)
    assert from_dict(TrialConfig, to_dict(config)) == config


def test_variants_set_pooling_and_attention() -> None:
    causal_eos = apply_variant(TrialConfig(), "model1")
    assert (causal_eos.model.pooling.kind, causal_eos.model.attention) == ("eos", "causal")
    assert {apply_variant(TrialConfig(), v).model for v in VARIANTS}.__len__() == 5
    with pytest.raises(ConfigError, match="unknown model variant 'model9'"):
        apply_variant(TrialConfig(), "model9")
