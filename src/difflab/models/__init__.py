"""Networks. Every network is called as ``net(x, t)``, x of shape (B, ...) and t of shape (B,)."""

from difflab.models.embeddings import SinusoidalEmbedding
from difflab.models.mlp import MLP, ConditionalLinearNet

__all__ = ["MLP", "ConditionalLinearNet", "SinusoidalEmbedding"]
