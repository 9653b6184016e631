"""Configuration as data: dotted overrides, type coercion, round trips and clear errors."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from objectives.config.presets import PRESETS, preset_config
from objectives.config.trial_config import ConfigError, TrialConfig, from_dict, override, to_dict
from objectives.config.variants import VARIANTS, apply_variant
from objectives.evaluation.mteb_tasks import task_names
from objectives.evaluation.task_files import discover_tasks
from objectives.model.backbone import ALIASES, num_layers


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


def test_the_gpu_offline_preset_is_the_papers_recipe_on_packaged_parts_only(
    tasks_dir: Path,
) -> None:
    config = preset_config("gpu-offline", {"eval.tasks_dir": str(tasks_dir)})
    assert config.model.backbone in ALIASES and num_layers(config.model.backbone) == 30
    assert (config.model.dtype, config.train.negatives) == ("bfloat16", "effective")
    assert config.train.batch_size * config.train.grad_accum == 256
    assert config.eval.max_texts is None  # the full offline tasks, as the paper scores MTEB
    assert set(task_names(config.eval)) <= set(discover_tasks(str(tasks_dir)))


def test_variants_set_pooling_and_attention() -> None:
    causal_eos = apply_variant(TrialConfig(), "model1")
    assert (causal_eos.model.pooling.kind, causal_eos.model.attention) == ("eos", "causal")
    assert {apply_variant(TrialConfig(), v).model for v in VARIANTS}.__len__() == 5
    with pytest.raises(ConfigError, match="unknown model variant 'model9'"):
        apply_variant(TrialConfig(), "model9")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("train.steps", 0, "train.steps must be >= 1, got 0"),
        ("train.eval_every", "0", "train.eval_every must be >= 1, got 0"),
        ("train.max_tokens", 0, "train.max_tokens must be >= 1, got 0"),
        ("train.batch_size", -1, "train.batch_size must be >= 1, got -1"),
        ("train.grad_accum", 0, "train.grad_accum must be >= 1, got 0"),
        ("train.lr", "0", "train.lr must be > 0, got 0.0"),
        ("train.head_lr", -1e-4, "train.head_lr must be > 0, got -0.0001"),
        ("train.warmup_steps", -1, "train.warmup_steps must be >= 0, got -1"),
        ("model.max_length", 0, "model.max_length must be >= 1, got 0"),
        ("model.lora.r", 0, "model.lora.r must be >= 1, got 0"),
        ("model.lora.alpha", 0, "model.lora.alpha must be >= 1, got 0"),
        ("model.lora.dropout", 1.0, "model.lora.dropout must be in [0, 1), got 1.0"),
        ("model.lora.dropout", -0.1, "model.lora.dropout must be in [0, 1), got -0.1"),
        ("model.pooling.heads", 0, "model.pooling.heads must be >= 1, got 0"),
        ("model.pooling.head_dim", 0, "model.pooling.head_dim must be >= 1, got 0"),
        ("model.pooling.n_latents", 0, "model.pooling.n_latents must be >= 1, got 0"),
        ("model.pooling.mlp_ratio", 0, "model.pooling.mlp_ratio must be >= 1, got 0"),
        ("model.pooling.layer_weight_std", 0, "model.pooling.layer_weight_std must be > 0"),
        ("eval.max_texts", 0, "eval.max_texts must be >= 1, got 0"),
        ("threads", 0, "threads must be >= 1, got 0"),
    ],
)
def test_an_out_of_range_value_fails_at_override_time_naming_the_field(
    path: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        override(TrialConfig(), {path: value})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_unset_optional_limits_and_edge_values_are_accepted() -> None:
    config = override(
        TrialConfig(),
        {"eval.max_texts": None, "train.head_lr": None, "model.lora.dropout": 0.0, "threads": 1},
    )
    assert config.eval.max_texts is None and config.model.lora.dropout == 0.0


def _sections(cls: type) -> list[type]:
    found = [cls]
    for f in dataclasses.fields(cls):
        for arg in typing.get_args(typing.get_type_hints(cls)[f.name]) or (
            typing.get_type_hints(cls)[f.name],
        ):
            if dataclasses.is_dataclass(arg):
                found += _sections(arg)
    return found


def test_every_config_field_is_documented_in_one_line() -> None:
    sections = _sections(TrialConfig)
    assert len(sections) == 6
    for section in sections:
        for f in dataclasses.fields(section):
            help_text = f.metadata.get("help", "")
            assert help_text and "\n" not in help_text, f"{section.__name__}.{f.name}"


def test_instructions_are_a_mapping_set_per_task_by_dotted_path() -> None:
    config = override(
        TrialConfig(),
        {
            "eval.instructions.SICK-R": "Find sentences that mean the same.",
            "eval.instructions.BiorxivClusteringS2S.v2": "Name the field of the paper.",
        },
    )
    assert dict(config.eval.instructions) == {
        "SICK-R": "Find sentences that mean the same.",
        "BiorxivClusteringS2S.v2": "Name the field of the paper.",
    }
    again = override(config, {"eval.instructions.SICK-R": "Other."})
    assert dict(again.eval.instructions)["SICK-R"] == "Other."
    assert from_dict(TrialConfig, to_dict(again)) == again
    from_yaml = override(TrialConfig(), {"eval.instructions": {"STS14": "x"}})
    assert from_yaml.eval.instructions == (("STS14", "x"),)
    with pytest.raises(ConfigError, match="must map names to texts"):
        override(TrialConfig(), {"eval.instructions": ["STS14"]})
