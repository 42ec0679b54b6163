"""Networks. Diffusion networks are called as ``net(x, t)``, x of shape (B, ...) and t of shape
(B,); class-conditional ones (``num_classes`` set) as ``net(x, t, labels)`` with labels (B,) in
0..num_classes, num_classes being the null class (``labels`` None: the null class for all);
score networks as ``net(x)`` or, noise-conditional, ``net(x, sigma)``."""

from difflab.models.embeddings import ClassEmbedding, SinusoidalEmbedding
from difflab.models.mlp import MLP, ConditionalLinearNet, ScoreMLP

__all__ = ["MLP", "ClassEmbedding", "ConditionalLinearNet", "ScoreMLP", "SinusoidalEmbedding"]
