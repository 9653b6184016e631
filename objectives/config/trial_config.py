"""Configuration as data: one typed object describes a whole trial.

Ablation studies, presets and CLI overrides all work the same way: they replace fields of a
``TrialConfig`` by dotted path (``model.pooling.heads=8``), so every arm is reproducible from its
resolved configuration alone, which is stored with each trial.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from objectives.errors import AblationError

Attention = Literal["causal", "bidirectional"]
PoolingKind = Literal["eos", "mean", "last_layer", "multi_layer"]
LayerSummary = Literal["eos", "mean"]
Negatives = Literal["micro", "effective"]
# The default tasks, two per category, from the tasks directory (shared/data); three have no hub
# twin, so a study with no tasks directory that keeps this default scores ONLINE_TASKS instead:
# the same four categories from MTEB's hub (objectives.evaluation.mteb_tasks.task_names).
DEFAULT_TASKS = (
    "SICK-R",
    "STS14",
    "STSBenchmark",
    "SciFactSubset",
    "Banking77Classification",
    "Banking77Intents",
    "ArxivTitles",
)
ONLINE_TASKS = (
    "SICK-R",
    "STS14",
    "STSBenchmark",
    "SciFact",
    "Banking77Classification",
    "TwentyNewsgroupsClustering.v2",
    "ArXivHierarchicalClusteringS2S",
)
_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


class ConfigError(AblationError, ValueError):
    """A configuration that cannot be built; the message names the field and the fix."""


Instructions = tuple[tuple[str, str], ...]
"""A mapping as sorted (key, value) pairs, so configs stay frozen and hashable."""


def _doc(help: str) -> dict[str, str]:
    """A field's one-line documentation, as ``metadata["help"]`` (as peft's configs do)."""
    return {"help": help}


Rule = tuple[str, Callable[[float], bool]]
AT_LEAST_0: Rule = (">= 0", lambda v: v >= 0)
AT_LEAST_1: Rule = (">= 1", lambda v: v >= 1)
POSITIVE: Rule = ("> 0", lambda v: v > 0)
FRACTION: Rule = ("in [0, 1)", lambda v: 0 <= v < 1)


def _check_ranges(config: Any, section: str, rules: dict[str, Rule]) -> None:
    """Raise ``ConfigError`` naming the first field outside its range; ``None`` means unset."""
    for name, (text, holds) in rules.items():
        value = getattr(config, name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # unset, or a type error that coercion reports with the field's type
        if not holds(value):
            where = f"{section}.{name}" if section else name
            raise ConfigError(f"{where} must be {text}, got {value!r}")


@dataclass(frozen=True)
class PoolingConfig:
    """How token states become one vector (docs/PAPER.md, "The trainable pooling head")."""

    kind: PoolingKind = field(
        default="multi_layer",
        metadata=_doc("eos / mean (no parameters) or a resampler over the last or many layers"),
    )
    layers: str | tuple[int, ...] = field(
        default="all",
        metadata=_doc(
            "multi_layer only: all, first_third, middle_third, last_third, top_k:K, first_k:K, "
            "middle_k:K or 1-based ids ('1,5,9', '10-20')"
        ),
    )
    layer_summary: LayerSummary | None = field(
        default=None,
        metadata=_doc(
            "per-layer vector of multi_layer; None: eos when causal, mean when bidirectional"
        ),
    )
    heads: int = field(default=32, metadata=_doc("cross-attention heads of the resampler (>= 1)"))
    head_dim: int = field(
        default=2048,
        metadata=_doc("width of each head; the inner width is heads x head_dim (>= 1)"),
    )
    n_latents: int = field(
        default=768, metadata=_doc("trainable latent vectors the resampler attends from (>= 1)")
    )
    layer_weights: bool = field(
        default=True, metadata=_doc("add the trainable layer-weight matrix W (multi_layer)")
    )
    layer_weight_std: float = field(
        default=1.0,
        metadata=_doc("std of W's normal initialisation; 1.0 as the released nn.Embedding (> 0)"),
    )
    mlp_ratio: int = field(
        default=4, metadata=_doc("GEGLU feed-forward width as a multiple of the model width (>= 1)")
    )

    def __post_init__(self) -> None:
        rules = dict.fromkeys(("heads", "head_dim", "n_latents", "mlp_ratio"), AT_LEAST_1)
        _check_ranges(self, "model.pooling", rules | {"layer_weight_std": POSITIVE})


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the backbone (docs/PAPER.md "Training recipe": r 16, alpha 32, dropout 0.1)."""

    r: int = field(default=16, metadata=_doc("rank of the LoRA update matrices (>= 1)"))
    alpha: int = field(
        default=32, metadata=_doc("LoRA scaling numerator: updates are scaled by alpha / r (>= 1)")
    )
    dropout: float = field(
        default=0.1, metadata=_doc("dropout on the LoRA input (0 <= dropout < 1)")
    )
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata=_doc(
            "module names to adapt; None: every linear layer of the backbone (peft all-linear)"
        ),
    )

    def __post_init__(self) -> None:
        _check_ranges(
            self, "model.lora", {"r": AT_LEAST_1, "alpha": AT_LEAST_1, "dropout": FRACTION}
        )


@dataclass(frozen=True)
class ModelConfig:
    """The embedding model: backbone, attention mode, pooling head and LoRA."""

    backbone: str = field(
        default="minilm",
        metadata=_doc(
            "an alias (minilm, smollm2-135m), an HF model id, or a local model directory"
        ),
    )
    attention: Attention = field(
        default="bidirectional", metadata=_doc("causal or bidirectional self-attention")
    )
    pooling: PoolingConfig = field(default_factory=PoolingConfig, metadata=_doc("the pooling head"))
    lora: LoraSettings | None = field(
        default_factory=LoraSettings,
        metadata=_doc("LoRA on the backbone; None trains the head only (the backbone frozen)"),
    )
    max_length: int = field(
        default=128, metadata=_doc("tokens per text, longer texts are truncated (>= 1)")
    )
    dtype: Literal["float32", "bfloat16"] = field(
        default="float32",
        metadata=_doc("backbone weights' dtype; the pooling head always trains in float32"),
    )
    query_prompt: str | None = field(
        default=None,
        metadata=_doc("text put before training queries and retrieval queries (None: no prompt)"),
    )

    def __post_init__(self) -> None:
        _check_ranges(self, "model", {"max_length": AT_LEAST_1})


@dataclass(frozen=True)
class TrainConfig:
    """Contrastive fine-tuning (InfoNCE, docs/PAPER.md "Training recipe")."""

    data: str | None = field(
        default=None,
        metadata=_doc(
            "x.jsonl, x.parquet, a parquet or save_to_disk folder, or hub NAME[:SUBSET][@SPLIT]; "
            "None: the tasks dir's train/pairs.jsonl, online objectives.training.pairs.ONLINE_PAIRS"
        ),
    )
    steps: int = field(default=1000, metadata=_doc("optimizer steps (>= 1)"))
    batch_size: int = field(
        default=32, metadata=_doc("pairs per micro-batch, the negatives' pool when micro (>= 1)")
    )
    grad_accum: int = field(
        default=8, metadata=_doc("micro-batches accumulated per optimizer step (>= 1)")
    )
    lr: float = field(
        default=1e-5, metadata=_doc("AdamW learning rate of the LoRA parameters (> 0)")
    )
    head_lr: float | None = field(
        default=None, metadata=_doc("learning rate of the pooling head; None: lr (> 0)")
    )
    weight_decay: float = field(
        default=0.01,
        metadata=_doc("AdamW weight decay, not on biases, LayerNorm weights, latents or W (>= 0)"),
    )
    warmup_steps: int = field(
        default=100, metadata=_doc("linear warm-up steps before the linear decay (>= 0)")
    )
    max_grad_norm: float = field(
        default=1.0, metadata=_doc("gradient-norm clipping threshold (> 0)")
    )
    scale: float = field(default=20.0, metadata=_doc("InfoNCE inverse temperature (> 0)"))
    hard_negatives: bool = field(
        default=True, metadata=_doc("use each pair's hard negative as an extra candidate")
    )
    max_pairs: int | None = field(
        default=None, metadata=_doc("cap on training pairs, the same for every seed (>= 1)")
    )
    eval_every: int = field(
        default=100, metadata=_doc("optimizer steps between intermediate reports (>= 1)")
    )
    dev_pairs: int = field(
        default=256, metadata=_doc("STS Benchmark dev pairs in the intermediate signal (>= 0)")
    )
    dev_queries: int = field(
        default=64, metadata=_doc("training pairs held out for the signal's MRR@10 (>= 0)")
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_doc(
            "recompute backbone activations in backward: less memory, about 1/3 more compute"
        ),
    )
    negatives: Negatives = field(
        default="micro",
        metadata=_doc(
            "in-batch negatives from the micro-batch, or the whole effective batch (GradCache)"
        ),
    )
    max_tokens: int | None = field(
        default=None,
        metadata=_doc(
            "padded-token budget of one forward pass: a step's texts bucketed by length; "
            "None: one pass per micro-batch (>= 1)"
        ),
    )

    def __post_init__(self) -> None:
        counts = ("steps", "batch_size", "grad_accum", "max_pairs", "eval_every", "max_tokens")
        rules = dict.fromkeys(counts, AT_LEAST_1)
        rules |= dict.fromkeys(("lr", "head_lr", "max_grad_norm", "scale"), POSITIVE)
        rules |= dict.fromkeys(
            ("weight_decay", "warmup_steps", "dev_pairs", "dev_queries"), AT_LEAST_0
        )
        _check_ranges(self, "train", rules)


@dataclass(frozen=True)
class EvalConfig:
    """The MTEB subset that scores a trained model."""

    tasks: tuple[str, ...] = field(
        default=DEFAULT_TASKS,
        metadata=_doc(
            "MTEB task names (local ones from the tasks dir); left default online: ONLINE_TASKS"
        ),
    )
    tasks_dir: str | None = field(
        default=None,
        metadata=_doc(
            "local task files (layout of shared/data); None: ABLATION_TASKS_DIR, else online"
        ),
    )
    max_texts: int | None = field(
        default=None,
        metadata=_doc(
            "cap on texts per task, a seeded subsample for CPU presets; None: all (>= 1)"
        ),
    )
    batch_size: int = field(default=64, metadata=_doc("texts per encoding batch (>= 1)"))
    samples_per_label: int = field(
        default=8, metadata=_doc("classification training rows per label (>= 1)")
    )
    use_instructions: bool = field(
        default=False,
        metadata=_doc(
            "give every task its instruction (objectives.evaluation.instructions); off: only query_prompt"
        ),
    )
    instructions: Instructions = field(
        default=(),
        metadata=_doc(
            "per-task instruction overrides, task name -> instruction (eval.instructions.TASK=...)"
        ),
    )

    holdout: bool = field(
        default=False,
        metadata=_doc(
            "score texts outside the seeded subset instead: as many again from the rest of each "
            "task, none shared with it, to check a verdict on texts its study never scored "
            "(needs max_texts)"
        ),
    )

    def __post_init__(self) -> None:
        rules = dict.fromkeys(("max_texts", "batch_size", "samples_per_label"), AT_LEAST_1)
        _check_ranges(self, "eval", rules)
        if self.holdout and self.max_texts is None:
            raise ConfigError(
                "eval.holdout scores texts outside the eval.max_texts subset; set eval.max_texts"
            )


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs; the seed fixes data order, LoRA and head initialisation."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata=_doc("the embedding model"))
    train: TrainConfig = field(default_factory=TrainConfig, metadata=_doc("the fine-tuning recipe"))
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=_doc("the scoring tasks"))
    seed: int = field(
        default=0, metadata=_doc("fixes data order, LoRA and head initialisation (>= 0)")
    )
    threads: int | None = field(
        default=None, metadata=_doc("torch and BLAS threads; None: the library default (>= 1)")
    )
    device: str = field(
        default="auto", metadata=_doc("auto (cuda when available, else cpu), cpu, cuda or cuda:N")
    )

    def __post_init__(self) -> None:
        _check_ranges(self, "", {"seed": AT_LEAST_0, "threads": AT_LEAST_1})


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
    if rest and typing.get_type_hints(type(obj))[head] == Instructions:
        # A mapping field takes the rest of the path as one key (task names may hold dots).
        value = dict(current) | {".".join(rest): _coerce(str, value, full)}
        rest = []
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
    if tp == Instructions:
        return _coerce_mapping(value, where)
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


def _coerce_mapping(value: Any, where: str) -> Instructions:
    """A mapping of strings (YAML mapping, JSON object text, or pairs) as sorted pairs."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            value = None
    if isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in value
    ):
        value = dict(value)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            f"'{where}' must map names to texts, e.g. {where}.SICK-R=\"...\" or a JSON object"
        )
    return tuple(sorted(value.items()))


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))
