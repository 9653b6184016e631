"""Layer selection: the rules of docs/PAPER.md ("The five studies"), clear errors for impossible
arms, and proof that only the selected layers reach the multi-layer embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from objectives.config.trial_config import ConfigError, PoolingConfig
from objectives.model.embedding_model import EmbeddingModel
from objectives.model.layers import resolve_layers
from tests.tiny_models import tiny_model_config, tiny_qwen2_dir

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("num_layers", "first", "middle", "last"),
    [
        (24, range(1, 9), range(9, 17), range(17, 25)),
        (6, range(1, 3), range(3, 5), range(5, 7)),
        (30, range(1, 11), range(11, 21), range(21, 31)),
        (7, range(1, 4), range(4, 6), range(6, 8)),  # earlier parts take the extra layers
        (8, range(1, 4), range(4, 7), range(7, 9)),
    ],
)
def test_thirds(num_layers: int, first: range, middle: range, last: range) -> None:
    assert resolve_layers("first_third", num_layers) == tuple(first)
    assert resolve_layers("middle_third", num_layers) == tuple(middle)
    assert resolve_layers("last_third", num_layers) == tuple(last)


def test_all_top_k_and_explicit() -> None:
    assert resolve_layers("all", 6) == (1, 2, 3, 4, 5, 6)
    assert resolve_layers("top_k:4", 24) == (21, 22, 23, 24)
    assert resolve_layers("top_k:16", 30) == tuple(range(15, 31))
    assert resolve_layers("top_k:6", 6) == resolve_layers("all", 6)
    assert resolve_layers("5,1 2", 6) == (1, 2, 5)
    assert resolve_layers((6, 2), 6) == (2, 6)


def test_first_k_middle_k_and_ranges() -> None:
    assert resolve_layers("first_k:4", 30) == (1, 2, 3, 4)
    assert resolve_layers("middle_k:4", 30) == (14, 15, 16, 17)  # 13 layers below, 13 above
    assert resolve_layers("middle_k:5", 30) == (13, 14, 15, 16, 17)  # the odd one out above
    assert resolve_layers("middle_k:6", 6) == resolve_layers("all", 6)
    assert resolve_layers("10-20", 30) == tuple(range(10, 21))
    assert resolve_layers("1-3, 9", 30) == (1, 2, 3, 9)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("top_k:16", "top_k:16 needs 16 layers but the backbone has 6; choose 1 <= K <= 6"),
        ((0, 1), "the backbone has 6 layers"),
        ((7,), "the backbone has 6 layers"),
        ("1,9", "the backbone has 6 layers"),
        ((), "the backbone has 6 layers"),
        ("top_k:0", "the backbone has 6"),
        ("first_k:8", "first_k:8 needs 8 layers but the backbone has 6"),
        ("middle_k:7", "middle_k:7 needs 7 layers"),
        ("4-9", "layers [7, 8, 9] do not exist"),
    ],
)
def test_impossible_selection_names_the_layer_count(rule: str | tuple, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_layers(rule, 6)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_rules() -> None:
    with pytest.raises(ConfigError, match="at least 3 layers but the backbone has 2"):
        resolve_layers("last_third", 2)
    with pytest.raises(ConfigError, match="unknown layer rule 'bottom_half'"):
        resolve_layers("bottom_half", 6)
    with pytest.raises(ConfigError, match="K must be an integer"):
        resolve_layers("top_k:many", 6)


def test_model_build_refuses_an_impossible_arm(tiny_decoder_dir: Path) -> None:
    pooling = PoolingConfig(layers="top_k:16", heads=2, head_dim=8, n_latents=4)
    with pytest.raises(ConfigError, match="the backbone has 4"):
        EmbeddingModel.build(tiny_model_config(tiny_decoder_dir, pooling=pooling))


RULES = ("all", "first_third", "middle_third", "last_third", "top_k:4", "2,3")


@pytest.mark.parametrize("num_layers", [6, 24])
@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_only_selected_layers_reach_the_embedding(
    num_layers: int, attention: str, tmp_path: Path
) -> None:
    """Gradients of the embedding reach exactly the selected layers' pooled inputs."""
    path = tiny_qwen2_dir(tmp_path, num_layers=num_layers, hidden_size=16)
    for rule in RULES:
        pooling = PoolingConfig(layers=rule, heads=2, head_dim=4, n_latents=2, mlp_ratio=1)
        model = EmbeddingModel.build(
            tiny_model_config(path, attention=attention, pooling=pooling, lora=None)
        )
        batch = model.tokenize(["a cat sat", "the dog ran far away"])
        with torch.no_grad():
            states = model.backbone(**batch, output_hidden_states=True).hidden_states
        leaves = [h.detach().clone().requires_grad_(True) for h in states]
        features = {
            "hidden_states": tuple(leaves),
            "last_hidden_state": leaves[-1],
            "attention_mask": batch["attention_mask"],
        }
        model.head(features).sum().backward()
        reached = {i for i, leaf in enumerate(leaves) if leaf.grad is not None and leaf.grad.any()}
        assert reached == set(resolve_layers(rule, num_layers)), (rule, num_layers)
