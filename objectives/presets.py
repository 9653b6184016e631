"""Size presets as data: each is a set of overrides on the paper-default ``TrialConfig``.

The paper's recipe is the default; presets scale it down for a machine, visibly (the README lists
what each costs), and any field can still be overridden after the preset is applied.
"""

from __future__ import annotations

from typing import Any

from objectives.config import ConfigError, TrialConfig, override
from objectives.instructions import QUERY_INSTRUCTION, prompt_for

# The GPU presets train queries with the retrieval instruction and evaluate every task with its
# own (objectives.instructions), as the paper's released code; CPU presets keep no instructions.
QUERY_PROMPT = prompt_for(QUERY_INSTRUCTION)

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds per trial on 2 CPU cores: for tests and wiring checks, not for conclusions.
    "smoke": {
        "model.backbone": "minilm",
        "model.max_length": 32,
        "model.pooling.n_latents": 4,
        "model.pooling.heads": 2,
        "model.pooling.head_dim": 32,
        "train.steps": 4,
        "train.batch_size": 8,
        "train.grad_accum": 1,
        "train.lr": 1e-4,
        "train.warmup_steps": 1,
        "train.eval_every": 2,
        "train.max_pairs": 256,
        "train.dev_pairs": 32,
        "train.dev_queries": 8,
        "eval.max_texts": 64,
        "eval.batch_size": 32,
        "threads": 1,
    },
    # Minutes per trial on 2 CPU cores with the packaged MiniLM: the offline default of a study.
    # Measured with benchmarks/trial_cost.py on a busy 2-core box (1 thread, batch 16, 8 latents):
    # s/step 2.4 (8x512 head), 3.8 (16x1024), 6.9 (32x2048, the default), 34 (64x4096), so 30
    # steps take 1.2 / 1.9 / 3.4 / 17 min; with the 8x512 head the 400-texts-per-task evaluation
    # took about 40 s and the three dev signals about 20 s (a whole trial 2.1-2.7 min per paper
    # variant). The 32x2048 baseline in the layer-weights study (two trials side by side, 7 tasks):
    # 4 min training, 2 min scoring, 4.7 GB peak; the 4-trial study 14.5 min.
    # One torch thread: under load two threads ran a MiniLM step up to 13x slower.
    "cpu": {
        "model.backbone": "minilm",
        "model.max_length": 64,
        "model.pooling.n_latents": 8,
        "train.steps": 30,
        "train.batch_size": 16,
        "train.grad_accum": 1,
        "train.lr": 1e-4,
        "train.warmup_steps": 3,
        "train.eval_every": 10,
        "train.dev_pairs": 200,
        "train.dev_queries": 50,
        "eval.max_texts": 400,
        "eval.batch_size": 64,
        "threads": 1,
    },
    # A real decoder LLM offline on 2 CPU cores: SmolLM2-135M (30 layers, width 576; objectives/
    # smollm2.py), for the decoder ablations (EOS pooling, causal vs bidirectional, thirds, top-K).
    # The backbone's backward pass dominates a step, so batches are small and texts short; the
    # head is 8x512 (inner width 7x the model's, about the paper's 16x at 4,096 wide). One torch
    # thread: on a busy 2-core box a step took 7 s with 1 thread and 30-56 s with 2
    # (oversubscription); run two trials side by side instead. Measured with
    # benchmarks/decoder_top_k.py (shared 2-core box, load ~3): a top-k-layers trial costs
    # 150-160 CPU s, about 3 min wall (20 steps at 4.4 s, 5 tasks x 100 texts in 75 s), 3.4 GB
    # peak RSS; so a 12-trial study (4 arms x 3 seeds, 2 trials at a time) takes about 20 min.
    "cpu-decoder": {
        "model.backbone": "smollm2-135m",
        "model.max_length": 32,
        "model.pooling.n_latents": 16,
        "model.pooling.heads": 8,
        "model.pooling.head_dim": 512,
        "train.steps": 20,
        "train.batch_size": 8,
        "train.grad_accum": 1,
        "train.lr": 1e-4,
        "train.warmup_steps": 2,
        "train.eval_every": 10,
        "train.dev_pairs": 48,
        "train.dev_queries": 16,
        "eval.max_texts": 100,
        "eval.batch_size": 32,
        "threads": 1,
    },
    # One GPU (online): Qwen2-0.5B, the paper's robustness-check backbone, paper hyperparameters.
    # Measured on an H100 80GB (benchmarks/gpu_recipe.py, random weights of the real shapes):
    # 1.3-2.2 s per step for every variant and width, 12-24 GB peak; 1,000 steps in 22-36 min.
    "gpu": {
        "model.backbone": "Qwen/Qwen2-0.5B",
        "model.dtype": "bfloat16",
        "model.max_length": 512,
        "model.query_prompt": QUERY_PROMPT,
        "eval.use_instructions": True,
        "train.batch_size": 32,
        "train.grad_accum": 8,
        "train.negatives": "effective",
        "eval.batch_size": 128,
    },
    # The paper's setting (online, large GPU): Mistral-7B, max length 1,024, effective batch 256.
    # Gradient checkpointing: without it EOS pooling alone peaked at 67 GB on an H100 and the
    # trainable-pooling variants did not fit in 80 GB (benchmarks/gpu_recipe.py).
    "paper": {
        "model.backbone": "mistralai/Mistral-7B-v0.1",
        "model.dtype": "bfloat16",
        "model.max_length": 1024,
        "model.query_prompt": QUERY_PROMPT,
        "eval.use_instructions": True,
        "train.batch_size": 32,
        "train.grad_accum": 8,
        "train.negatives": "effective",
        "train.gradient_checkpointing": True,
        "eval.batch_size": 64,
    },
}


def preset_config(name: str, changes: dict[str, Any] | None = None) -> TrialConfig:
    """The ``TrialConfig`` of preset ``name`` with optional dotted-path overrides on top."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {sorted(PRESETS)}")
    return override(override(TrialConfig(), PRESETS[name]), changes or {})
