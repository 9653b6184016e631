"""The embedding model as a whole: training changes it, save/load restores it exactly, seeds fix
its initialisation, only LoRA and the head train, and encode() keeps order and normalisation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from objectives.config.trial_config import (
    ConfigError,
    LoraSettings,
    ModelConfig,
    PoolingConfig,
    TrainConfig,
)
from objectives.model.backbone import ensure_eos, load_backbone, num_layers, resolve_backbone
from objectives.model.embedding_model import EmbeddingModel
from objectives.training.loop import make_optimizer
from tests.tiny_models import DECODER_EOS, decoder_tokenizer, tiny_model_config

torch.set_num_threads(1)
QUERIES = ["a cat sits on a mat", "stocks fell sharply", "the rain stopped", "he plays guitar"]
POSITIVES = [
    "a cat is on a mat",
    "markets dropped a lot",
    "it is no longer raining",
    "music on strings",
]


def _train_briefly(model: EmbeddingModel, steps: int = 3) -> None:
    """A few InfoNCE steps with a large learning rate, so LoRA and head weights really move."""
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(groups["backbone"] + groups["head"], lr=1e-2)
    model.train()
    for _ in range(steps):
        scores = model(model.tokenize(QUERIES)) @ model(model.tokenize(POSITIVES)).T * 20
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(QUERIES)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize(
    ("attention", "kind", "lora"),
    [
        ("bidirectional", "multi_layer", LoraSettings(r=4, alpha=8)),
        ("causal", "last_layer", LoraSettings(r=4, alpha=8)),
        ("causal", "eos", LoraSettings(r=4, alpha=8)),
        ("bidirectional", "multi_layer", None),
    ],
)
def test_save_and_load_a_trained_model_gives_identical_embeddings(
    attention: str, kind: str, lora: LoraSettings | None, tiny_decoder_dir: Path, tmp_path: Path
) -> None:
    pooling = PoolingConfig(kind=kind, layers="2,4", heads=2, head_dim=8, n_latents=4)
    config = tiny_model_config(tiny_decoder_dir, attention=attention, pooling=pooling, lora=lora)
    model = EmbeddingModel.build(config, seed=3)
    untrained = model.encode(QUERIES)
    _train_briefly(model)
    trained = model.encode(QUERIES)
    assert not np.allclose(untrained, trained, atol=1e-4)
    model.save(tmp_path / "saved")
    reloaded = EmbeddingModel.load(tmp_path / "saved")
    assert reloaded.config == config
    np.testing.assert_allclose(reloaded.encode(QUERIES), trained, rtol=0, atol=1e-6)


def test_minilm_save_and_load(tmp_path: Path) -> None:
    config = tiny_model_config("minilm", lora=LoraSettings(r=2, alpha=4))
    model = EmbeddingModel.build(config, seed=0)
    _train_briefly(model, steps=1)
    model.save(tmp_path)
    np.testing.assert_allclose(
        EmbeddingModel.load(tmp_path).encode(QUERIES), model.encode(QUERIES), rtol=0, atol=1e-6
    )


def test_seed_fixes_lora_and_head_initialisation(tiny_decoder_dir: Path) -> None:
    config = tiny_model_config(tiny_decoder_dir, lora=LoraSettings(r=4, alpha=8))
    state = torch.random.get_rng_state()

    def init_of(seed: int) -> list[torch.Tensor]:
        return [p.detach().clone() for p in EmbeddingModel.build(config, seed=seed).parameters()]

    first, again, other = init_of(1), init_of(1), init_of(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched


def test_only_lora_and_head_train(tiny_decoder_dir: Path) -> None:
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, lora=LoraSettings(r=4)))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    lora = {name for name in trainable if name.startswith("backbone.")}
    assert lora and all("lora_" in name for name in lora)
    projections = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora}
    assert projections == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    head = {name for name, _ in model.named_parameters() if name.startswith("head.")}
    assert head <= trainable
    groups = model.parameter_groups()
    counts = model.parameter_counts()
    assert counts["head"] == sum(p.numel() for p in groups["head"]) > 0
    assert counts["trainable"] == counts["head"] + sum(p.numel() for p in groups["backbone"])
    assert counts["total"] > counts["trainable"]


def test_head_only_training_freezes_the_backbone(tiny_decoder_dir: Path) -> None:
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, lora=None))
    assert model.parameter_groups()["backbone"] == []
    assert model.parameter_counts()["trainable"] == model.parameter_counts()["head"]


def test_encode_keeps_order_and_normalises(tiny_decoder_dir: Path) -> None:
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir))
    texts = ["x", "a much longer text than the others here", "mid length text", "y z"]
    batched = model.encode(texts, batch_size=2)
    one_by_one = np.concatenate([model.encode([t]) for t in texts])
    assert batched.dtype == np.float32 and batched.shape == (4, model.dim)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    prompted = model.encode(texts, prompt="query: ")
    assert not np.allclose(prompted, batched, atol=1e-4)
    assert model.training  # encode() restores the mode it found
    assert model.encode([]).shape == (0, model.dim)


def test_a_bf16_backbone_trains_a_float32_head_that_moves_at_lr_1e_5(
    tiny_decoder_dir: Path,
) -> None:
    """Under a bf16 backbone a bf16 head rounds AdamW's 1e-5 updates away; a float32 head moves."""
    pooling = PoolingConfig(kind="multi_layer", heads=2, head_dim=8, n_latents=4)
    config = tiny_model_config(tiny_decoder_dir, dtype="bfloat16", pooling=pooling)
    model = EmbeddingModel.build(config, seed=0)
    assert next(model.backbone.base_model.parameters()).dtype == torch.bfloat16
    assert {p.dtype for p in model.head.parameters()} == {torch.float32}
    before = [p.detach().clone() for p in model.head.parameters()]
    optimizer, schedule = make_optimizer(model, TrainConfig(lr=1e-5, steps=10, warmup_steps=0))
    model.train()
    for _ in range(10):
        scores = model(model.tokenize(QUERIES)) @ model(model.tokenize(POSITIVES)).T * 20
        torch.nn.functional.cross_entropy(scores, torch.arange(len(QUERIES))).backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    after = list(model.head.parameters())
    moved = sum(int((a != b).sum()) for a, b in zip(after, before, strict=True))
    assert moved >= 0.95 * sum(p.numel() for p in before)
    embeddings = model.encode(QUERIES)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_unloadable_backbone_is_a_one_line_config_error(tmp_path: Path) -> None:
    for name in ("no-such-org/no-such-model", str(tmp_path)):
        with pytest.raises(ConfigError) as error:
            load_backbone(ModelConfig(backbone=name))
        assert name in str(error.value) and "\n" not in str(error.value)


def test_backbone_names_resolve_and_report_their_depth(tiny_decoder_dir: Path) -> None:
    minilm = resolve_backbone("minilm")
    assert Path(minilm, "config.json").is_file()
    assert resolve_backbone(str(tiny_decoder_dir)) == str(tiny_decoder_dir)
    assert (
        resolve_backbone("Qwen/Qwen2-0.5B") == "Qwen/Qwen2-0.5B"
    )  # online users' ids pass through
    assert num_layers("minilm") == 6
    assert num_layers(str(tiny_decoder_dir)) == 4


def test_decoder_tokenizers_end_with_one_eos(tiny_decoder_dir: Path) -> None:
    _, tokenizer = load_backbone(tiny_model_config(tiny_decoder_dir))
    eos_id = tokenizer.convert_tokens_to_ids(DECODER_EOS)
    assert tokenizer("a cat")["input_ids"][-1] == eos_id
    assert tokenizer.pad_token == DECODER_EOS
    appending = decoder_tokenizer()
    ensure_eos(appending, "tiny")
    ensure_eos(appending, "tiny")  # a tokenizer that already appends EOS is left as it is
    ids = appending("a cat")["input_ids"]
    assert ids[-1] == eos_id and ids[-2] != eos_id
    assert isinstance(appending, PreTrainedTokenizerFast)


def test_a_head_without_heads_is_refused_when_configured() -> None:
    with pytest.raises(ConfigError, match=r"^model.pooling.heads must be >= 1, got 0$"):
        replace(PoolingConfig(), heads=0, n_latents=2)


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_queries_and_documents_in_one_batch_embed_as_they_do_alone(
    attention: str, tiny_decoder_dir: Path
) -> None:
    """Training runs queries (prompted) and documents in one pass; padding to the longer texts and
    the shared batch change nothing, and only the queries get the prompt."""
    pooling = PoolingConfig(kind="multi_layer", heads=2, head_dim=8, n_latents=4)
    model = EmbeddingModel.build(
        tiny_model_config(tiny_decoder_dir, attention=attention, pooling=pooling)
    )
    model.eval()
    documents = [*POSITIVES, "a much longer document that pads every query in the batch further"]
    with torch.no_grad():
        joint = model(model.tokenize(QUERIES + documents, "query: ", prompted=len(QUERIES)))
        queries = model(model.tokenize(QUERIES, "query: "))
        alone = model(model.tokenize(documents))
    torch.testing.assert_close(joint[: len(QUERIES)], queries, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(joint[len(QUERIES) :], alone, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        unprompted = model(model.tokenize(QUERIES))
    assert not torch.allclose(queries, unprompted, atol=1e-4)
