"""Configuration as data: one typed object describes a whole trial.

Ablation studies, presets and CLI overrides all work the same way: they replace fields of a
``TrialConfig`` by dotted path (``model.pooling.heads=8``), so every arm is reproducible from its
resolved configuration alone, which is stored with each trial.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Attention = Literal["causal", "bidirectional"]
PoolingKind = Literal["eos", "mean", "last_layer", "multi_layer"]
LayerSummary = Literal["eos", "mean"]
_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


class ConfigError(ValueError):
    """A configuration that cannot be built; the message names the field and the fix."""


@dataclass(frozen=True)
class PoolingConfig:
    """How token states become one vector (PAPER.md, "The trainable pooling head").

    ``layers`` is a rule (``all``, ``first_third``, ``middle_third``, ``last_third``, ``top_k:K``)
    or an explicit tuple of 1-based transformer layer numbers; it only matters for ``multi_layer``.
    ``layer_summary`` is the per-layer vector of multi-layer pooling; ``None`` follows the attention
    mode (``eos`` when causal, ``mean`` when bidirectional), as in the paper's released code.
    """

    kind: PoolingKind = "multi_layer"
    layers: str | tuple[int, ...] = "all"
    layer_summary: LayerSummary | None = None
    heads: int = 32
    head_dim: int = 2048
    n_latents: int = 768
    layer_weights: bool = True
    mlp_ratio: int = 4


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the backbone; ``target_modules=None`` picks the projections per architecture."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelConfig:
    """The embedding model: backbone, attention mode, pooling head and LoRA.

    ``backbone`` is an alias (``minilm``, ``smollm2-135m``), an HF model id, or a local directory.
    ``lora=None`` trains the head only (the backbone stays frozen).
    """

    backbone: str = "minilm"
    attention: Attention = "bidirectional"
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    max_length: int = 128
    dtype: Literal["float32", "bfloat16"] = "float32"
    query_prompt: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Contrastive fine-tuning (InfoNCE, PAPER.md "Training recipe").

    ``data`` is a JSONL pairs file, an HF dataset name, or ``None`` for ``train/pairs.jsonl`` under
    the tasks directory. ``eval_every`` steps the trial reports its cheap held-out signal.
    ``gradient_checkpointing`` recomputes the backbone's activations in the backward pass instead
    of keeping them: the same gradients for less memory and about a third more compute.
    """

    data: str | None = None
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 8
    lr: float = 1e-5
    head_lr: float | None = None
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    scale: float = 20.0
    hard_negatives: bool = True
    max_pairs: int | None = None
    eval_every: int = 100
    dev_pairs: int = 256
    dev_queries: int = 64
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """The MTEB subset that scores a trained model.

    ``tasks_dir`` (or the ``ABLATION_TASKS_DIR`` environment variable) points at local task files in
    the layout of ``shared/data``; ``None`` there means the tasks are loaded online by MTEB name.
    ``max_texts`` caps the texts per task (seeded subsample) so CPU presets finish in minutes.
    """

    tasks: tuple[str, ...] = (
        "SICK-R",
        "STS14",
        "STSBenchmark",
        "SciFactSubset",
        "Banking77Classification",
        "Banking77Intents",
        "ArxivTitles",
    )
    tasks_dir: str | None = None
    max_texts: int | None = None
    batch_size: int = 64
    samples_per_label: int = 8


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs; the seed fixes data order, LoRA and head initialisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    threads: int | None = None
    device: str = "auto"


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists), for storage and reports."""
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from ``to_dict`` output (unknown keys are an error)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown field(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}"
        )
    return cls(**{k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()})


def override(config: Any, changes: dict[str, Any]) -> Any:
    """Return a copy of ``config`` with dotted-path fields replaced, type-checked.

    ``override(cfg, {"model.pooling.heads": 8, "train.lr": 1e-4})``. Values may be strings (from a
    CLI or a plan file); they are converted to the field's type.
    """
    for path, value in changes.items():
        config = _set_path(config, path.split("."), value, path)
    return config


def _set_path(obj: Any, parts: list[str], value: Any, full: str) -> Any:
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"'{full}': {type(obj).__name__} has no field '{parts[0]}'")
    names = [f.name for f in dataclasses.fields(obj)]
    head, rest = parts[0], parts[1:]
    if head not in names:
        raise ConfigError(f"unknown config field '{full}'; '{head}' is not one of {names}")
    current = getattr(obj, head)
    if rest:
        if current is None:
            current = typing.get_type_hints(type(obj))[head]
            current = _dataclass_in(current)()
        new = _set_path(current, rest, value, full)
    else:
        new = _coerce(typing.get_type_hints(type(obj))[head], value, full)
    return dataclasses.replace(obj, **{head: new})


def _dataclass_in(tp: Any) -> type:
    for arg in typing.get_args(tp) or (tp,):
        if dataclasses.is_dataclass(arg):
            return arg
    raise ConfigError(f"{tp} is not a config section")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (possibly a string or list from YAML/CLI) to the annotated type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"'{where}': {value!r} fits none of {[_name(a) for a in args]}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"'{where}' must be one of {list(args)}, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return from_dict(tp, value)
        raise ConfigError(f"'{where}' must be a mapping of {tp.__name__} fields")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"'{where}' must be true/false, got {value!r}")
    if tp in (int, float, str):
        if isinstance(value, (list, tuple, dict)):  # str([1, 2]) would turn a list into text
            raise ConfigError(f"'{where}' must be {tp.__name__}, got {value!r}")
        if isinstance(value, bool) and tp is not str:
            raise ConfigError(f"'{where}' must be {tp.__name__}, got {value!r}")
        try:
            converted = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"'{where}' must be {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"'{where}' must be an integer, got {value!r}")
        return converted
    return value


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))
