"""Compression: one-shot magnitude pruning (an optax wrapper), knowledge distillation, QAT."""
