"""Automatic image colorization: Zhang et al. and Larsson et al. (ECCV 2016).

The sub-packages ``color``, ``losses``, ``metrics`` and ``models`` are pure PyTorch/numpy (no Ray, no MLflow,
no file I/O); ``io``, ``cli`` and ``distributed`` wrap them.
"""

__version__ = "0.1.0"
