"""Training: the trainer loop, run directories and checkpoints."""
