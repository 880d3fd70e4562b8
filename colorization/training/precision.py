"""Mixed precision around a network, leaving targets and losses in float32.

``MixedPrecision(model, torch.bfloat16)`` runs only the network's forward under ``torch.autocast`` and hands back
float32 outputs, so the soft-encoding, nearest-bin search and losses of the training steps keep full precision
(nearest-bin distances in bf16 would pick wrong bins). It exposes the network as ``.module``, like DDP, so the
training steps find its config the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _to_float32(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, dict):
        return {key: _to_float32(value) for key, value in output.items()}
    return output


class MixedPrecision(nn.Module):
    """Runs ``module``'s forward under autocast to ``dtype`` on the inputs' device type; outputs are float32.

    Args:
        module: the network (or a DDP wrapper of it).
        dtype: autocast dtype, e.g. torch.bfloat16; None disables autocast (plain float32).
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype | None = torch.bfloat16) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.dtype is None:
            return self.module(*args, **kwargs)
        device_type = next(self.module.parameters()).device.type
        with torch.autocast(device_type=device_type, dtype=self.dtype):
            output = self.module(*args, **kwargs)
        return _to_float32(output)
