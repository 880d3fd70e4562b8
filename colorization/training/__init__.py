"""Framework-free training steps (pure PyTorch): one loss and one optimizer step per model family.

Ray's per-worker loop (``colorization/distributed/train_loop.py``) and local scripts call these, so the maths of
training is the same on one CPU and on a cluster.
"""
