"""Audio features and metrics: log-mel spectrograms, objective distances, Griffin-Lim."""
