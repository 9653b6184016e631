"""The embedding model: backbone (with its attention mode) + optional LoRA + pooling head.

Everything about the model comes from one ``ModelConfig``, so an ablation arm is just a different
config, and a saved model is its config, its LoRA adapter and its head state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from objectives.config.trial_config import ModelConfig, from_dict, to_dict
from objectives.model.backbone import (
    backbone_inputs,
    check_attention_mode,
    layer_count,
    load_backbone,
)
from objectives.model.lora import apply_lora, load_lora
from objectives.model.pooling import NO_DECAY, build_pooling

CONFIG_FILE = "model_config.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
PROGRESS_MIN_TEXTS = 2048  # encode() shows a progress bar from this many texts on


class EmbeddingModel(nn.Module):
    """Texts -> L2-normalised embeddings; ``forward`` for training, ``encode`` for evaluation."""

    def __init__(
        self,
        config: ModelConfig,
        backbone: PreTrainedModel | PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        head: nn.Module,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.head = head

    @classmethod
    def build(cls, config: ModelConfig, seed: int = 0, device: str = "cpu") -> EmbeddingModel:
        """A fresh model; ``seed`` fixes the LoRA and head initialisation (global RNG untouched)."""
        backbone, tokenizer = load_backbone(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = _with_lora(backbone, config, adapter_dir=None)
            head = _head(config, backbone)
        model = cls(config, backbone, tokenizer, head).to(device)
        # On the model's device: probing a 7B backbone on the CPU would take minutes.
        check_attention_mode(model.backbone, tokenizer, config.backbone, config.attention)
        return model

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> EmbeddingModel:
        """The model ``save`` wrote to ``path``: same backbone, adapter and head, same embeddings."""
        path = Path(path)
        config = from_dict(ModelConfig, json.loads((path / CONFIG_FILE).read_text()))
        backbone, tokenizer = load_backbone(config)
        backbone = _with_lora(backbone, config, adapter_dir=path / ADAPTER_DIR)
        head = _head(config, backbone)
        head.load_state_dict(load_file(path / HEAD_FILE))
        return cls(config, backbone, tokenizer, head).to(device)

    def save(self, path: str | Path) -> None:
        """Write the config JSON, the LoRA adapter (if any) and the head state to directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(to_dict(self.config), indent=2))
        if isinstance(self.backbone, PeftModel):
            self.backbone.save_pretrained(path / ADAPTER_DIR)
        state = {name: t.detach().contiguous().cpu() for name, t in self.head.state_dict().items()}
        save_file(state, path / HEAD_FILE)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dim(self) -> int:
        """The embedding width (the backbone's hidden size)."""
        return self.backbone.config.hidden_size

    def tokenize(
        self, texts: list[str], prompt: str | None = None, prompted: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Padded ``input_ids`` and ``attention_mask`` on the model's device, ready for ``forward``.

        ``prompt`` goes before the first ``prompted`` texts (all when ``None``), so queries and
        their documents can share one batch.
        """
        split = len(texts) if prompted is None else prompted
        return self._pad(
            self._token_ids(texts[:split], prompt) + self._token_ids(texts[split:], None)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, d) float32 L2-normalised embeddings of a ``tokenize`` batch, differentiable."""
        mask = batch["attention_mask"]
        output = self.backbone(
            **backbone_inputs(self.backbone.config, batch["input_ids"], mask),
            output_hidden_states=self.head.needs_hidden_states,
            return_dict=True,
        )
        features = {
            "last_hidden_state": output.last_hidden_state,
            "attention_mask": mask,
            "hidden_states": output.hidden_states,
        }
        return F.normalize(self.head(features), dim=-1)

    @torch.inference_mode()
    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        prompt: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """(N, d) float32 normalised embeddings, in input order.

        Texts are tokenised once and batched longest first, so each batch pads to similar lengths.
        """
        ids = self._token_ids(list(texts), prompt)
        order = np.argsort([-len(row) for row in ids], kind="stable")
        embeddings = np.empty((len(ids), self.dim), dtype=np.float32)
        if show_progress is None:
            show_progress = len(ids) >= PROGRESS_MIN_TEXTS
        was_training = self.training
        self.eval()
        try:
            starts = range(0, len(ids), batch_size)
            for start in tqdm(starts, desc="encode", unit="batch", disable=not show_progress):
                rows = order[start : start + batch_size]
                batch = self._pad([ids[i] for i in rows])
                embeddings[rows] = self.forward(batch).cpu().numpy()
        finally:
            self.train(was_training)
        return embeddings

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part, for per-part learning rates: LoRA vs pooling head."""
        return {
            "backbone": [p for p in self.backbone.parameters() if p.requires_grad],
            "head": list(self.head.parameters()),
        }

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters AdamW must not decay: biases, norm weights, the latents and W.

        The rule of HF Trainer, which trained the paper's models, plus the head's embeddings.
        """
        exempt = []
        for module in self.modules():
            norm = isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__
            for name, param in module.named_parameters(recurse=False):
                if param.requires_grad and (norm or name == "bias" or name in NO_DECAY):
                    exempt.append(param)
        return exempt

    def parameter_counts(self) -> dict[str, int]:
        """Total, trainable and head parameter counts, for reports."""
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "head": sum(p.numel() for p in self.head.parameters()),
        }

    def _token_ids(self, texts: list[str], prompt: str | None) -> list[list[int]]:
        if not texts:
            return []
        if prompt:
            texts = [prompt + text for text in texts]
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.config.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def _pad(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        """Pad on the tokenizer's side (decoders may pad left); the mask marks real tokens."""
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, span] = 1
        device = self.device
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def _with_lora(
    backbone: PreTrainedModel, config: ModelConfig, adapter_dir: Path | None
) -> PreTrainedModel | PeftModel:
    """Fresh or saved LoRA on the backbone; with ``lora=None`` the backbone is simply frozen."""
    if config.lora is None:
        return backbone.requires_grad_(False)
    if adapter_dir is None:
        return apply_lora(backbone, config.lora)
    return load_lora(backbone, adapter_dir)


def _head(config: ModelConfig, backbone: PreTrainedModel | PeftModel) -> nn.Module:
    """The pooling head, float32 whatever the backbone's dtype (see ``objectives.model.pooling``)."""
    hf_config = backbone.config
    head = build_pooling(
        config.pooling, hf_config.hidden_size, layer_count(hf_config), config.attention
    )
    return head.float().requires_grad_(True)
