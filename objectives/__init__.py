"""What one trial runs: model -> training -> evaluation.

A typed configuration (``objectives.config.trial_config``) describes the embedding model (backbone, attention
mode, pooling head, LoRA), its contrastive fine-tuning and the MTEB subset that scores it; the
search layer only changes fields of that configuration, never the code path.
"""
