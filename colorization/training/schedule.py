"""The solver of a :class:`TrainConfig`: optimizer with Caffe-style bias groups, step-wise lr schedule.

Both papers trained in Caffe: Zhang et al. with Adam at a fixed lr dropped x0.1 once (225k of 450k iterations),
Larsson et al. with SGD whose biases learn at twice the lr without weight decay (``lr_mult: 2, decay_mult: 0``)
and lr steps at 1.0M, 1.5M, 1.75M (paper-facts.md). One ``LambdaLR`` multiplies every group's base lr by
``gamma ** (lr steps passed)``, after an optional linear warm-up.
"""

from __future__ import annotations

import bisect

import torch
from torch import nn

from colorization.training.config import OptimizerConfig, ScheduleConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam or SGD over ``model``'s trainable parameters: weights in one group, 1-D parameters (biases,
    BatchNorm) in another with ``bias_lr_mult`` and, unless ``bias_weight_decay``, no weight decay.

    Args:
        model: the network (possibly DDP-wrapped: its parameters are the network's).
        config: the optimizer section of the training config.

    Returns:
        The optimizer (parameter group 0: weights, group 1: 1-D parameters when there are any).
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    weights = [parameter for parameter in parameters if parameter.ndim > 1]
    biases = [parameter for parameter in parameters if parameter.ndim <= 1]
    groups: list[dict] = [{"params": weights}]
    if biases:
        groups.append(
            {
                "params": biases,
                "lr": config.lr * config.bias_lr_mult,
                "weight_decay": config.weight_decay if config.bias_weight_decay else 0.0,
            }
        )
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(step: int, config: ScheduleConfig) -> float:
    """Multiplier of the base lr for the optimizer step that follows ``step`` completed steps.

    Args:
        step: optimizer steps done so far (0 for the first step).
        config: the schedule section.

    Returns:
        ``gamma ** (number of lr_steps <= step)``, times ``(step + 1) / warmup_steps`` during warm-up.
    """
    factor = config.gamma ** bisect.bisect_right(config.lr_steps, step)
    if config.warmup_steps and step < config.warmup_steps:
        factor *= (step + 1) / config.warmup_steps
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to ``.step()`` once after every optimizer step; its state dict holds only the step count."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
