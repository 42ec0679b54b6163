"""Networks. Diffusion networks are called as ``net(x, t)``, x of shape (B, ...) and t of shape
(B,); score networks as ``net(x)`` or, noise-conditional, ``net(x, sigma)``."""

from difflab.models.embeddings import SinusoidalEmbedding
from difflab.models.mlp import MLP, ConditionalLinearNet, ScoreMLP

__all__ = ["MLP", "ConditionalLinearNet", "ScoreMLP", "SinusoidalEmbedding"]
