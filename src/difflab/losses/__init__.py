"""Training objectives. Every loss returns per-example values of shape (B,); the trainer reduces."""

from difflab.losses.base import LossOutput, Objective

__all__ = ["LossOutput", "Objective"]
