"""``python -m objectives.evaluation.saved_model --model DIR``: score a saved or untrained model on the MTEB subset.

A trial's numbers should be reproducible outside the study: a saved model directory (what
``EmbeddingModel.save`` writes) is re-scored with the evaluation settings the trial used when the
directory carries them (``eval_config.json``), so the scores match the stored ones. A plain backbone
(alias, HF id or directory) with ``--pooling`` and ``--attention`` gives the untrained reference row
a study can be read against, and checks the evaluation path against MTEB's published scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from objectives.cli import Parser, one_line_errors
from objectives.config.trial_config import (
    ConfigError,
    EvalConfig,
    ModelConfig,
    PoolingConfig,
    from_dict,
    override,
    to_dict,
)

if TYPE_CHECKING:
    from objectives.model.embedding_model import EmbeddingModel

EVAL_CONFIG_FILE = "eval_config.json"


def save_eval_config(path: str | Path, config: EvalConfig) -> None:
    """Write the evaluation settings a saved model was scored with beside it."""
    (Path(path) / EVAL_CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2))


def eval_config_of(path: str | Path) -> EvalConfig:
    """The settings stored with a saved model, else the defaults (the full task list, uncapped)."""
    stored = Path(path) / EVAL_CONFIG_FILE
    if stored.is_file():
        return from_dict(EvalConfig, json.loads(stored.read_text()))
    return EvalConfig()


def score(
    model: EmbeddingModel,
    eval_config: EvalConfig,
    tasks: list[Any] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Main score per task of ``model`` on the tasks ``eval_config`` names (or ``tasks``, already
    loaded from it), with mteb's evaluators."""
    from objectives.evaluation.instructions import instructions_of
    from objectives.evaluation.mteb_tasks import load_tasks
    from objectives.evaluation.scoring import CachedEncoder, evaluate

    if tasks is None:
        tasks = load_tasks(eval_config)
    instructions = instructions_of(tasks, eval_config)
    encoder = CachedEncoder.for_model(model, eval_config.batch_size, instructions)
    return evaluate(encoder, tasks, progress=progress).task_scores


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m objectives.evaluation.saved_model", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model",
        required=True,
        help="a saved model directory, or a backbone (alias, HF id or directory) to score untrained",
    )
    parser.add_argument("--tasks", help="comma-separated task names (default: the trial's)")
    parser.add_argument("--tasks-dir", help="offline task data (default: $ABLATION_TASKS_DIR)")
    parser.add_argument("--max-texts", help="cap texts per task (default: the trial's; none)")
    parser.add_argument(
        "--pooling", default="mean", help="untrained backbone only: eos or mean (default mean)"
    )
    parser.add_argument(
        "--attention", default="bidirectional", help="untrained backbone only: causal|bidirectional"
    )
    parser.add_argument("--max-length", help="untrained backbone only: tokens per text")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print {task: score} as the last line")
    return parser


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    saved = Path(args.model).expanduser()
    is_saved = (saved / "model_config.json").is_file()
    eval_config = eval_config_of(saved) if is_saved else EvalConfig()
    changes = {
        "tasks": args.tasks,
        "tasks_dir": args.tasks_dir,
        "max_texts": args.max_texts,
    }
    eval_config = override(eval_config, {k: v for k, v in changes.items() if v is not None})
    if not is_saved:
        model_config = override(
            ModelConfig(backbone=args.model, pooling=PoolingConfig(kind="mean"), lora=None),
            {
                "pooling.kind": args.pooling,
                "attention": args.attention,
                **({"max_length": args.max_length} if args.max_length else {}),
            },
        )
        if model_config.pooling.kind not in ("eos", "mean"):
            raise ConfigError(
                f"--pooling {args.pooling}: an untrained backbone takes eos or mean; a "
                "trainable head needs a trained model directory"
            )
    from objectives.evaluation.mteb_tasks import load_tasks
    from objectives.model.embedding_model import EmbeddingModel

    tasks = load_tasks(eval_config)  # bad task names and files fail before the model loads
    if is_saved:
        model = EmbeddingModel.load(saved, device=args.device)
    else:
        # Untrained: with lora=None nothing is adapted, so a mean- or EOS-pooled backbone is
        # exactly the published pretrained model.
        model = EmbeddingModel.build(model_config, seed=0, device=args.device)
    scores = score(model, eval_config, tasks, progress=not args.json)
    for task, value in scores.items():
        print(f"{task:<28} {value:.5f}")
    if args.json:
        print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
