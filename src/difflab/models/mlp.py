"""Networks for vector data (B, D): an MLP with a sinusoidal time embedding (optionally
class-conditional), and the tutorial's conditional-linear network (a learned per-timestep
embedding multiplying each hidden layer)."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from difflab.models.embeddings import ClassEmbedding, SinusoidalEmbedding, make_activation


class MLP(nn.Module):
    """x (B, D), t (B,) [, labels (B,)] -> (B, out_dim).

    The time embedding goes through a small MLP and is added to every hidden layer:
    h_0 = act(W_0 x + U_0 e(t)), h_{k+1} = h_k + act(W_k h_k + U_k e(t)) (residual), out = V h.
    With ``num_classes`` = K the network is class-conditional: a learned embedding of the label
    (one vector per layer, K + 1 rows, the last the null class of classifier-free guidance) is
    added to each layer's time features, U_k e(t) + c_k(y); ``labels`` None is the null class.
    """

    def __init__(
        self,
        data_dim: int,
        out_dim: int | None = None,
        *,
        width: int = 128,
        depth: int = 3,
        activation: str = "silu",
        time_dim: int = 64,
        time_scale: float = 1.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"model.depth and model.width must be >= 1, got {depth}, {width}")
        out_dim = data_dim if out_dim is None else out_dim
        self.num_classes = num_classes
        self.class_embed = ClassEmbedding(num_classes, depth * width) if num_classes else None
        self.embed = nn.Sequential(
            SinusoidalEmbedding(time_dim, scale=time_scale),
            nn.Linear(time_dim, width),
            make_activation(activation),
        )
        self.inputs = nn.ModuleList(
            [nn.Linear(data_dim, width)] + [nn.Linear(width, width) for _ in range(depth - 1)]
        )
        # One matrix gives every layer its own projection of the time embedding.
        self.time_proj = nn.Linear(width, depth * width)
        self.act = make_activation(activation)
        self.out = nn.Linear(width, out_dim)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """Per-layer time features (depth, B or 1, width). A batch sharing one step (t made with
        ``expand``, as samplers do) is embedded once and broadcast, which halves sampling cost."""
        if t.dim() == 1 and t.shape[0] > 1 and t.stride(0) == 0:
            t = t[:1]
        feats = self.time_proj(self.embed(t))
        return feats.view(t.shape[0], len(self.inputs), -1).transpose(0, 1)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        feats = self.time_features(t)
        if self.class_embed is not None:
            classes = self.class_embed(labels, x.shape[0])
            feats = feats + classes.view(classes.shape[0], len(self.inputs), -1).transpose(0, 1)
        elif labels is not None:
            raise ValueError("this network is not class-conditional; it takes no labels")
        h = self.act(self.inputs[0](x) + feats[0])
        for lin, f in zip(self.inputs[1:], feats[1:]):
            h = h + self.act(lin(h) + f)
        return self.out(h)


class ConditionalLinear(nn.Module):
    """y = gamma_t * (W x + b), with gamma_t a learned embedding of the integer step t."""

    def __init__(self, num_in: int, num_out: int, T: int) -> None:
        super().__init__()
        self.lin = nn.Linear(num_in, num_out)
        self.embed = nn.Embedding(T, num_out)
        nn.init.uniform_(self.embed.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.embed(t) * self.lin(x)


class ConditionalLinearNet(nn.Module):
    """The tutorial's network: ``depth`` conditional-linear layers with softplus, then a linear
    output. Needs integer t in {0..T-1}; it learns each step's embedding separately, so it trains
    slower than :class:`MLP`."""

    def __init__(
        self,
        data_dim: int,
        out_dim: int | None = None,
        *,
        T: int,
        width: int = 128,
        depth: int = 3,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"model.depth and model.width must be >= 1, got {depth}, {width}")
        out_dim = data_dim if out_dim is None else out_dim
        dims = [data_dim] + [width] * depth
        self.layers = nn.ModuleList(ConditionalLinear(a, b, T) for a, b in pairwise(dims))
        self.act = make_activation(activation)
        self.out = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers:
            h = self.act(layer(h, t))
        return self.out(h)


class ScoreMLP(nn.Module):
    """A score network for vector data: x (B, D) -> s(x) (B, D), or with ``noise_conditional``
    x (B, D), sigma (B,) -> s(x, sigma).

    The same residual layout as :class:`MLP`. The noise-conditional network embeds log sigma
    (sinusoidal, scaled by ``noise_scale``) and divides its output by sigma, so the network
    itself predicts sigma * s = -z, a quantity of order one at every level (Song & Ermon 2020,
    "Improved techniques", technique 3). The single-scale network has no noise input.
    """

    def __init__(
        self,
        data_dim: int,
        *,
        noise_conditional: bool = False,
        width: int = 128,
        depth: int = 3,
        activation: str = "silu",
        time_dim: int = 64,
        noise_scale: float = 250.0,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"model.depth and model.width must be >= 1, got {depth}, {width}")
        self.noise_conditional = noise_conditional
        self.inputs = nn.ModuleList(
            [nn.Linear(data_dim, width)] + [nn.Linear(width, width) for _ in range(depth - 1)]
        )
        self.act = make_activation(activation)
        self.out = nn.Linear(width, data_dim)
        if noise_conditional:
            self.embed = nn.Sequential(
                SinusoidalEmbedding(time_dim, scale=noise_scale),
                nn.Linear(time_dim, width),
                make_activation(activation),
                nn.Linear(width, depth * width),
            )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_conditional != (sigma is not None):
            need = "needs sigma (B,)" if self.noise_conditional else "takes no sigma"
            raise ValueError(f"this score network {need}")
        if sigma is None:
            h = self.act(self.inputs[0](x))
            for lin in self.inputs[1:]:
                h = h + self.act(lin(h))
            return self.out(h)
        # a level shared by the batch (sigma made with ``expand``) is embedded once
        level = sigma[:1] if sigma.shape[0] > 1 and sigma.stride(0) == 0 else sigma
        feats = self.embed(level.log()).view(level.shape[0], len(self.inputs), -1).transpose(0, 1)
        h = self.act(self.inputs[0](x) + feats[0])
        for lin, f in zip(self.inputs[1:], feats[1:]):
            h = h + self.act(lin(h) + f)
        return self.out(h) / sigma.reshape(-1, *([1] * (x.dim() - 1)))
