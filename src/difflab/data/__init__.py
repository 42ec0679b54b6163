"""Data: seeded 2-D toy distributions (``toy``) and the user's own vectors (``files``)."""
