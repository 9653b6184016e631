"""Size presets as data: each is a set of overrides on the paper-default ``TrialConfig``.

The paper's recipe is the default; presets scale it down for a machine, visibly (the README lists
what each costs), and any field can still be overridden after the preset is applied.
"""

from __future__ import annotations

from typing import Any

from objectives.config.trial_config import ConfigError, TrialConfig, override
from objectives.evaluation.instructions import QUERY_INSTRUCTION, prompt_for

# The GPU presets train queries with the retrieval instruction and evaluate every task with its
# own (objectives.evaluation.instructions), as the paper's released code; CPU presets keep no instructions.
QUERY_PROMPT = prompt_for(QUERY_INSTRUCTION)

PRESETS: dict[str, dict[str, Any]] = {
    # Tests and wiring checks, seconds per trial: its subsets cannot resolve a 0.02 effect.
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
    # The offline default of a study: the packaged MiniLM on a small CPU, minutes per trial, to
    # compare arms within this preset (capped subsets, not published MTEB numbers). What a trial
    # costs per head width is in the README and printed by benchmarks/trial_cost.py.
    "cpu": {
        "model.backbone": "minilm",
        "model.max_length": 64,  # texts are truncated here: a step costs more the longer they are
        "model.pooling.n_latents": 8,  # the head's cost follows its latents, not the texts
        "train.steps": 30,
        "train.batch_size": 16,  # in-batch negatives: 15 per query, without accumulation
        "train.grad_accum": 1,
        "train.lr": 1e-4,  # 10x the paper's 1e-5: 30 steps instead of its 1,000
        "train.warmup_steps": 3,
        "train.eval_every": 10,  # dev signal at steps 0, 10, 20, 30: pruning and "did it learn"
        "train.dev_pairs": 200,
        "train.dev_queries": 50,
        # Passes of similar-length texts instead of one padded pass per micro-batch: a CPU pays
        # for padded tokens (benchmarks/train_throughput.py prints both counts).
        "train.max_tokens": 512,
        "eval.max_texts": 400,  # a seeded subset per task: the same texts for every arm and seed
        "eval.batch_size": 64,
        # One torch thread per trial and two trials side by side: under load two threads in one
        # trial oversubscribe the cores and run a step several times slower.
        "threads": 1,
    },
    # A real decoder LLM offline on a small CPU: SmolLM2-135M (30 layers, width 576; objectives/
    # smollm2.py), for the decoder ablations (EOS pooling, causal vs bidirectional, thirds, top-K).
    # It checks the wiring of those studies; 20 steps do not make it an embedding model (its arms
    # are flagged "not shown to learn"). The backbone's backward pass dominates a step, so batches are
    # small and texts short; one thread per trial, as in "cpu". Costs: benchmarks/decoder_top_k.py.
    "cpu-decoder": {
        "model.backbone": "smollm2-135m",
        "model.max_length": 32,
        "model.pooling.n_latents": 16,
        # Inner width 8 x 512, 7x the model's: about the paper's 16x at 4,096 wide.
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
    # The CPU preset in which a real decoder learns: SmolLM2-135M turned into an embedding model in
    # minutes, so a study on the 2-core box ends with arms that learned and verdicts that can be
    # decided (the README main job: layer-range, first-third vs all, 3 seeds). Sized so that two
    # trials side by side fit a 30-minute study; costs and learning curves per arm:
    # benchmarks/learning_preset.py. What it can conclude: how arms that learn here compare after
    # a short fine-tune on this preset's STS and retrieval subsets, not the paper's converged
    # numbers. The causal arms (model1-3) start from the EOS state and need many more steps than
    # this preset gives them, so the learning test flags them.
    "cpu-learn": {
        "model.backbone": "smollm2-135m",
        # The training pairs are short sentences (most under 32 tokens); SciFact documents are
        # cut here, for every arm alike.
        "model.max_length": 32,
        "model.pooling.n_latents": 16,
        "model.pooling.heads": 8,  # inner width 8 x 512, as cpu-decoder
        "model.pooling.head_dim": 512,
        "train.steps": 24,
        # 16 pairs and their hard negatives: 15 in-batch negatives per query. The backbone's
        # backward pass is most of a step, so the step count, not the head, sets the cost.
        "train.batch_size": 16,
        "train.grad_accum": 1,
        # 10x the paper's 1e-5 for LoRA: 24 steps instead of 1,000, on a 135M backbone (twice
        # that lowered EOS pooling's dev signal); the freshly initialised head, which has no
        # pretrained state to keep, at 2e-4.
        "train.lr": 1e-4,
        "train.head_lr": 2e-4,
        "train.warmup_steps": 2,
        # Dev signal at steps 0, 12 and 24: "did it learn" needs the first and the last; every
        # report encodes the dev texts again, as much as a few training steps.
        "train.eval_every": 12,
        "train.dev_pairs": 100,
        "train.dev_queries": 32,
        "train.max_tokens": 512,  # passes of similar-length texts: a CPU pays for padding
        # STS and retrieval only. Banking77 classification needs samples_per_label (8) training
        # texts for each of its 77 labels, and clustering V-measure needs many more texts than
        # clusters (k-means with k = 77 intents, about 100 arXiv categories); subsets that large
        # would cost more encoding than the training itself, and the small ones the cpu-decoder
        # preset scores cannot separate arms. Studies of those categories: the GPU presets.
        "eval.tasks": ("SICK-R", "STS14", "STSBenchmark", "SciFactSubset"),
        "eval.max_texts": 256,  # 128 pairs per STS task; 51 SciFact queries in 256 texts
        "eval.batch_size": 32,
        "threads": 1,  # two trials side by side on 2 cores, as "cpu"
    },
    # Real science on one offline GPU: the packaged SmolLM2-135M with the paper's recipe (bf16,
    # effective batch 256 with cached negatives, instructions, the full offline tasks) scaled to a
    # trial of minutes, so a 15-trial pooling-attention study fits in about an hour. Sized from FLOP
    # counts and the CPU step cost until a GPU run of benchmarks/gpu_recipe.py measures it (README).
    "gpu-offline": {
        "model.backbone": "smollm2-135m",
        "model.dtype": "bfloat16",
        "model.max_length": 128,  # the training pairs are short; the longest task texts are cut
        "model.query_prompt": QUERY_PROMPT,
        "eval.use_instructions": True,
        "train.steps": 600,  # about 8 passes over the 18k offline training pairs
        "train.batch_size": 32,
        "train.grad_accum": 8,  # the paper's effective batch of 256
        "train.negatives": "effective",
        # 10x the paper's 1e-5: a 135M backbone and 600 steps instead of a 7B one and 1,000.
        "train.lr": 1e-4,
        "train.warmup_steps": 60,
        "train.eval_every": 100,
        "eval.batch_size": 256,
    },
    # One GPU (online): Qwen2-0.5B, the paper's robustness-check backbone, paper hyperparameters.
    # Step time and peak memory per variant: benchmarks/gpu_recipe.py and the README.
    "gpu": {
        "model.backbone": "Qwen/Qwen2-0.5B",
        "model.dtype": "bfloat16",
        "model.max_length": 512,
        "model.query_prompt": QUERY_PROMPT,
        "eval.use_instructions": True,
        "train.batch_size": 32,
        "train.grad_accum": 8,  # the paper's effective batch of 256
        "train.negatives": "effective",
        "eval.batch_size": 128,
    },
    # The paper's setting (online, large GPU): Mistral-7B, max length 1,024, effective batch 256.
    "paper": {
        "model.backbone": "mistralai/Mistral-7B-v0.1",
        "model.dtype": "bfloat16",
        "model.max_length": 1024,
        "model.query_prompt": QUERY_PROMPT,
        "eval.use_instructions": True,
        "train.batch_size": 32,
        "train.grad_accum": 8,
        "train.negatives": "effective",
        # So the trainable-pooling variants fit on one 80 GB GPU (benchmarks/gpu_recipe.py).
        "train.gradient_checkpointing": True,
        "eval.batch_size": 64,
    },
}


def preset_config(name: str, changes: dict[str, Any] | None = None) -> TrialConfig:
    """The ``TrialConfig`` of preset ``name`` with optional dotted-path overrides on top."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {sorted(PRESETS)}")
    return override(override(TrialConfig(), PRESETS[name]), changes or {})
