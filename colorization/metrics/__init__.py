"""Evaluation metrics as mergeable accumulators (pure numpy/torch)."""
