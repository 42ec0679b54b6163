"""difflab: diffusion probabilistic models and score-based generative models as small, correct,
tested building blocks, with a command-line tool (``difflab --help``)."""

__version__ = "0.1.0"
