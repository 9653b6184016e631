"""The embedding model: a pretrained backbone with its attention mode, LoRA, the layers that feed pooling, and the pooling head."""
