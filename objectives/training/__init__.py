"""Contrastive fine-tuning: training pairs and dev slices, InfoNCE, the loop, and the cheap dev signal it reports."""
