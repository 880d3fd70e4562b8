"""The two networks (pure PyTorch), their configs, the registry of named variants and checkpoints."""
