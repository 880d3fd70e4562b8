"""Training losses of both papers (pure PyTorch)."""
