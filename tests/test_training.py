"""Training: the InfoNCE definition, seeded batches, held-out dev pairs, and that it learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from objectives.config import ConfigError, EvalConfig, PoolingConfig, TrainConfig, override
from objectives.data import Pair, batches, cap_pairs, load_pairs, split_dev
from objectives.evaluation import CachedEncoder, evaluate
from objectives.loss import info_nce
from objectives.model import EmbeddingModel
from objectives.presets import preset_config
from objectives.tasks import TaskDataError, load_tasks
from objectives.training import cached_backward, make_optimizer, train
from tests.tiny_models import tiny_model_config


def test_info_nce_is_cross_entropy_over_positives_then_negatives() -> None:
    generator = torch.Generator().manual_seed(0)
    q, p, n = (torch.randn(shape, generator=generator) for shape in ((3, 5), (3, 5), (2, 5)))
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q.numpy(), p.numpy(), n.numpy())]
    logits = 20.0 * unit[0] @ np.concatenate(unit[1:]).T
    expected = np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(logits)])
    assert info_nce(q, p, n, scale=20.0).item() == pytest.approx(expected, rel=1e-5)
    # Without negatives only the in-batch positives compete, so the loss can only be lower.
    assert info_nce(q, p, None).item() < info_nce(q, p, n).item()
    assert info_nce(q, p, n[:0]).item() == pytest.approx(info_nce(q, p).item())


def _pairs(count: int) -> list[Pair]:
    return [
        Pair(f"q{i}", f"p{i % (count // 2)}", f"n{i}" if i % 3 == 0 else None) for i in range(count)
    ]


def test_batches_are_seeded_and_never_repeat_a_text_within_a_batch() -> None:
    pairs = _pairs(40)  # every positive appears twice
    first = [next(stream) for stream in [batches(pairs, 8, seed=1)] for _ in range(10)]
    again = [next(stream) for stream in [batches(pairs, 8, seed=1)] for _ in range(10)]
    other = [next(stream) for stream in [batches(pairs, 8, seed=2)] for _ in range(10)]
    assert first == again and first != other
    for batch in first:
        assert len(batch) == 8
        assert len({p.positive for p in batch}) == 8 and len({p.query for p in batch}) == 8


def test_dev_pairs_are_held_out_and_the_same_for_every_trial() -> None:
    pairs = _pairs(60)
    train_pairs, dev = split_dev(pairs, 10)
    assert len(dev) == 10 and len(train_pairs) == 50
    assert not set(dev) & set(train_pairs)
    assert split_dev(pairs, 10) == (train_pairs, dev)
    assert split_dev(pairs, 100) == ([], pairs)
    assert cap_pairs(train_pairs, 20) == cap_pairs(train_pairs, 20)
    assert len(cap_pairs(train_pairs, 20)) == 20


def test_pairs_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    good = json.dumps({"query": "a", "positive": "b", "negative": "c", "source": "x"})
    path.write_text(f"{good}\n" + json.dumps({"query": "a", "positive": "b", "negative": 3}) + "\n")
    with pytest.raises(TaskDataError, match=r"pairs.jsonl:2: field 'negative' has the wrong type"):
        load_pairs(str(path))
    path.write_text(f"{good}\n" + json.dumps({"query": "a", "source": "x"}) + "\n")
    with pytest.raises(TaskDataError, match=r"pairs.jsonl:2: missing field 'positive'"):
        load_pairs(str(path))
    path.write_text(good + "\n" + json.dumps({"query": "d", "positive": "e"}) + "\n")
    assert load_pairs(str(path)) == [Pair("a", "b", "c"), Pair("d", "e", None)]


def test_reports_fall_on_eval_every_and_the_last_step_and_training_is_seeded(
    tiny_encoder_dir: Path,
) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(steps=5, batch_size=4, grad_accum=2, eval_every=2, warmup_steps=1, lr=1e-3)
    pairs = _pairs(40)
    states = []
    for _ in range(2):
        model = EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=3)
        torch.manual_seed(3)
        steps: list[int] = []
        stats = train(model, pairs, config, seed=3, on_step=steps.append, progress=False)
        assert steps == [2, 4, 5]
        assert stats.pairs == 5 * 2 * 4 and stats.steps == 5
        states.append(torch.cat([p.detach().flatten() for p in model.head.parameters()]))
    start = EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=3)
    assert torch.equal(states[0], states[1])  # same seed, same result on CPU
    assert not torch.equal(states[0], torch.cat([p.flatten() for p in start.head.parameters()]))


def test_weight_decay_skips_biases_norms_latents_and_w_and_keeps_per_part_lrs(
    tiny_decoder_dir: Path,
) -> None:
    model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir), seed=0)
    config = TrainConfig(lr=0.1, head_lr=0.2, weight_decay=0.5, steps=2, warmup_steps=0)
    optimizer, _ = make_optimizer(model, config)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {name: (g["lr"], g["weight_decay"]) for name, g in groups.items()} == {
        "backbone": (0.1, 0.5),
        "head": (0.2, 0.5),
        "head.no_decay": (0.2, 0.0),
    }
    names = {id(p): name for name, p in model.head.named_parameters()}
    exempt = {names[id(p)] for p in groups["head.no_decay"]["params"]}
    assert exempt == {
        name
        for name in names.values()
        if name.endswith(("bias", "latents", "layer_weights")) or ".norm_" in name
    }
    assert "layer_weights" in exempt and "resampler.ffn_in.bias" in exempt
    # With zero gradients AdamW's update is pure decay: decayed weights shrink, exempt ones stay.
    before = {id(p): p.detach().clone() for g in optimizer.param_groups for p in g["params"]}
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    for group in optimizer.param_groups:
        factor = 1 - group["lr"] * group["weight_decay"]
        for p in group["params"]:
            torch.testing.assert_close(p.detach(), before[id(p)] * factor)


def test_gradient_checkpointing_trains_the_same_model(tiny_decoder_dir: Path) -> None:
    """Recomputing activations (LoRA dropout included) changes memory, not the result."""
    torch.set_num_threads(1)
    trained = []
    for checkpointing in (False, True):
        config = TrainConfig(
            steps=3, batch_size=4, warmup_steps=1, lr=1e-2, gradient_checkpointing=checkpointing
        )
        model = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir), seed=5)
        torch.manual_seed(5)
        train(model, _pairs(40), config, seed=5, progress=False)
        assert (
            any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
            is checkpointing
        )
        trained.append(
            torch.cat([p.detach().flatten() for p in model.parameter_groups()["backbone"]])
        )
    start = EmbeddingModel.build(tiny_model_config(tiny_decoder_dir), seed=5)
    untrained = torch.cat([p.detach().flatten() for p in start.parameter_groups()["backbone"]])
    assert not torch.allclose(trained[0], untrained)
    torch.testing.assert_close(trained[1], trained[0])


def test_fine_tuning_minilm_raises_sick_r_spearman_over_the_random_head(tasks_dir: Path) -> None:
    """The cpu preset's fine-tune (30 steps; multi-layer pooling, random 8x512 head) on the real
    pairs. Fewer steps do not do: W starts N(0, 1) as in the released code, and the first steps
    are spent absorbing its large random offsets before the score rises."""
    torch.set_num_threads(1)
    config = preset_config(
        "cpu",
        {
            "model.pooling.kind": "multi_layer",
            "model.pooling.heads": 8,
            "model.pooling.head_dim": 512,
        },
    )
    assert config.train.steps == 30
    tasks = load_tasks(EvalConfig(tasks=("SICK-R",), tasks_dir=str(tasks_dir), max_texts=400))
    model = EmbeddingModel.build(config.model, seed=0)

    def sick_r() -> float:
        encoder = CachedEncoder(model, name="minilm", embed_dim=model.dim, batch_size=64)
        return evaluate(encoder, tasks, progress=False).task_scores["SICK-R"]

    untrained = sick_r()
    pairs = cap_pairs(load_pairs(str(tasks_dir / "train" / "pairs.jsonl")), 1024)
    torch.manual_seed(0)
    train(model, pairs, config.train, seed=0, progress=False)
    trained = sick_r()
    assert trained > untrained + 0.01, (untrained, trained)


@pytest.mark.parametrize("variant", ["multi_layer", "eos"])
def test_cached_negatives_give_the_gradients_of_one_loss_over_the_whole_effective_batch(
    variant: str, tiny_encoder_dir: Path, tiny_decoder_dir: Path
) -> None:
    """GradCache is exact: float64, dropout on (BERT's and LoRA's), three micro-batches of four."""
    torch.set_num_threads(1)
    if variant == "eos":
        model_config = tiny_model_config(
            tiny_decoder_dir, attention="causal", pooling=PoolingConfig("eos")
        )
    else:
        model_config = tiny_model_config(tiny_encoder_dir)
    model = EmbeddingModel.build(model_config, seed=0).double().train()
    params = [p for p in model.parameters() if p.requires_grad]
    config = TrainConfig(batch_size=4, grad_accum=3, negatives="effective")
    batch = next(batches(_pairs(40), 12, seed=0))
    assert sum(p.negative is not None for p in batch) > 0
    prompt = "query: "

    def one_graph() -> None:
        """The textbook loss: every micro-batch's pass kept in one graph, one InfoNCE over all."""
        columns: list[list[torch.Tensor]] = [[], [], []]
        for start in range(0, 12, 4):
            micro = batch[start : start + 4]
            negatives = [p.negative for p in micro if p.negative]
            texts = [p.query for p in micro] + [p.positive for p in micro] + negatives
            embeddings = model(model.tokenize(texts, prompt, prompted=4))
            for column, part in zip(
                columns, (embeddings[:4], embeddings[4:8], embeddings[8:]), strict=True
            ):
                column.append(part)
        info_nce(*(torch.cat(column) for column in columns), scale=config.scale).backward()

    def gradients(run, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        run()
        return [p.grad.clone() for p in params], torch.get_rng_state()

    expected, expected_rng = gradients(one_graph, seed=7)
    cached, cached_rng = gradients(lambda: cached_backward(model, batch, config, prompt), seed=7)
    for got, want in zip(cached, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # Replaying the random state leaves the stream after the step as one pass would.
    assert torch.equal(cached_rng, expected_rng)
    # Dropout does change the gradients, so equality above needed the replayed masks.
    other, _ = gradients(one_graph, seed=8)
    assert not all(torch.allclose(a, b) for a, b in zip(other, expected, strict=True))


def test_effective_negatives_need_distinct_texts_across_the_whole_effective_batch(
    tiny_encoder_dir: Path,
) -> None:
    torch.set_num_threads(1)
    pairs = _pairs(40)  # 20 distinct positives
    model = EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=0)
    config = TrainConfig(steps=2, batch_size=4, grad_accum=4, warmup_steps=0, lr=1e-3)
    fits = override(config, {"negatives": "effective"})
    assert train(model, pairs, fits, seed=0, progress=False).pairs == 2 * 16
    too_big = override(fits, {"grad_accum": 6})  # 24 pairs cannot have distinct positives
    with pytest.raises(ConfigError, match="batch_size x grad_accum"):
        train(model, pairs, too_big, seed=0, progress=False)
    with pytest.raises(ConfigError, match="'negatives' must be one of"):
        override(config, {"negatives": "all"})
