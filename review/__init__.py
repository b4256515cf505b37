"""Review report of a run: predictions drawn on the images, per-image scores, failures (python -m review)."""
