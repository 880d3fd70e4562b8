"""The training loop: plain PyTorch, the same for every model family, driven by any iterator of Lab batches.

Ray Train's per-worker function (``colorization/distributed/``) and the Ray-free path (``stages/train.py`` with a
``DataLoader``) both call :func:`train_loop`; they differ only in where batches come from and in the hooks they
pass (Ray adds ``ray.train.report``, MLflow logging on rank 0). The loop itself does no file I/O and imports no
Ray: what happens at a log line, a validation or a checkpoint is the business of :class:`TrainHooks`.

One optimizer step = ``accumulation`` forward/backward passes of the per-worker batch (DDP syncs gradients on the
last pass only), a check that the gradient is finite (a non-finite step is skipped, not applied), optional
clipping, ``optimizer.step()``, ``scheduler.step()``. The family adapter supplies the loss
(``adapter.loss_terms``) and, on a fresh start, its data-dependent set-up (``adapter.calibrate``: Larsson's
hypercolumn balancing; nothing for Zhang). Throughput (images/s), the share of wall time spent waiting for data
and an ETA are measured between log lines.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from colorization.families import LossInputs, adapter_for
from colorization.models.registry import create_model
from colorization.training.config import TrainConfig
from colorization.training.precision import MixedPrecision
from colorization.training.schedule import build_optimizer, build_scheduler
from colorization.training.state import TrainingState

__all__ = [
    "LoopStart",
    "Snapshot",
    "TrainHooks",
    "TrainSummary",
    "ValidationResult",
    "autocast_dtype",
    "build_model",
    "place_model",
    "train_loop",
    "uses_channels_last",
]

MAX_CONSECUTIVE_SKIPPED_STEPS = 10  # non-finite gradients this many steps in a row: the run has diverged


@dataclass
class ValidationResult:
    """What one validation produced.

    Attributes:
        metrics: scalars, e.g. ``val_loss``, ``val_auc``, ``val_rebalanced_auc``, ``val_psnr``,
            ``val_colourfulness`` (prefixed ``val_``).
        samples: uint8 (H, W, 3) images to log, e.g. one grid of grey | prediction | truth rows.
    """

    metrics: dict[str, float]
    samples: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopStart:
    """Facts known when the loop starts (passed to :meth:`TrainHooks.on_start`)."""

    start_step: int
    max_steps: int
    per_worker_batch: int
    accumulation: int
    world_size: int
    rank: int
    device: str
    autocast: str
    channels_last: bool
    calibration: dict[str, float]


@dataclass
class Snapshot:
    """Everything a checkpoint holds (passed to :meth:`TrainHooks.on_checkpoint`; write it with
    ``state.save_training_state(folder, model=s.model, state=s.state, config=s.config)``)."""

    model: nn.Module  # the bare network (no DDP / mixed-precision wrapper)
    state: TrainingState
    config: TrainConfig
    metrics: dict[str, float]


@dataclass
class TrainSummary:
    """The end of a run.

    Attributes:
        step: optimizer steps completed (== max_steps unless the data ran out).
        start_step: where this call started (> 0 after a resume).
        images: images this worker trained on in this call.
        seconds: wall time of this call.
        data_wait_fraction: share of ``seconds`` spent waiting for batches.
        skipped_steps: steps skipped for non-finite gradients.
        stopped_early: the batch iterator ended before max_steps.
        last_metrics: the last logged metrics.
        last_validation: the last validation metrics (empty when none ran).
    """

    step: int
    start_step: int
    images: int
    seconds: float
    data_wait_fraction: float
    skipped_steps: int
    stopped_early: bool
    last_metrics: dict[str, float]
    last_validation: dict[str, float]


class TrainHooks:
    """Callbacks of :func:`train_loop`; every method is a no-op here, override what you need.

    Every rank calls every hook (so Ray's ``report``, which all ranks must call, fits here); hooks decide what
    rank 0 alone does (logging, writing files).
    """

    def on_start(self, start: LoopStart) -> None:
        """Once, after set-up (calibration done), before the first step."""

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """Every ``cadence.log_every`` steps: loss terms, lr, images/s, data-wait share, ETA."""

    def on_validation(self, step: int, result: ValidationResult) -> None:
        """After each validation (every ``cadence.validate_every`` steps and at the end)."""

    def on_checkpoint(self, step: int, snapshot: Snapshot, final: bool) -> None:
        """Every ``cadence.checkpoint_every`` steps and at the end (``final``)."""

    def on_end(self, summary: TrainSummary) -> None:
        """Once, at the end."""


# ---------------------------------------------------------------------------------------------------------------
# Set-up helpers (call them before wrapping the model in DDP)
# ---------------------------------------------------------------------------------------------------------------


def build_model(config: TrainConfig) -> nn.Module:
    """A fresh network of ``config.model`` (variant + overrides), initialized from ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return create_model(config.model.variant, **config.model.overrides)


def autocast_dtype(config: TrainConfig, device: torch.device | str) -> torch.dtype | None:
    """bf16 for ``precision: bf16``, or ``auto`` on a GPU; None (float32) otherwise."""
    precision = config.scaling.precision
    if precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda"):
        return torch.bfloat16
    return None


def uses_channels_last(config: TrainConfig, device: torch.device | str) -> bool:
    """NHWC when asked, or by default on a GPU."""
    if config.scaling.channels_last is None:
        return torch.device(device).type == "cuda"
    return config.scaling.channels_last


def place_model(model: nn.Module, config: TrainConfig, device: torch.device | str) -> nn.Module:
    """Moves the network to ``device`` (NHWC when :func:`uses_channels_last`) and sets train mode.

    Do this before DDP wraps it: DDP's gradient buckets follow the parameters' layout at wrap time.
    """
    model = model.to(device)
    if uses_channels_last(config, device):
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def _no_sync(model: nn.Module, sync: bool):
    """DDP's ``no_sync`` on passes that only accumulate (a null context for a model without it)."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _rng_states(loss_generator: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "loss": loss_generator.get_state()}
    if torch.cuda.is_available() and loss_generator.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(loss_generator.device)
    return states


def _restore_rng(states: dict[str, torch.Tensor], loss_generator: torch.Generator) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "loss" in states and states["loss"].numel() == loss_generator.get_state().numel():
        loss_generator.set_state(states["loss"])
    if "cuda" in states and loss_generator.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], loss_generator.device)


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------



def loss_inputs_for(
    config: TrainConfig, *, class_weights: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> LossInputs:
    """The family losses' inputs from the ``loss`` section of a config (one mapping for training and validation)."""
    return LossInputs(
        class_weights=class_weights,
        generator=generator,
        soft_encode_neighbours=config.loss.soft_encode_neighbours,
        soft_encode_sigma=config.loss.soft_encode_sigma,
        hue_weight=config.loss.hue_weight,
    )

def train_loop(
    config: TrainConfig,
    model: nn.Module,
    batches: Iterator[torch.Tensor],
    *,
    device: torch.device | str,
    class_weights: torch.Tensor | None = None,
    resume: TrainingState | None = None,
    validate: Callable[[nn.Module], ValidationResult] | None = None,
    hooks: Sequence[TrainHooks] = (),
    rank: int = 0,
    world_size: int = 1,
) -> TrainSummary:
    """Trains ``model`` until ``config.schedule.max_steps`` optimizer steps (or until ``batches`` ends).

    Args:
        config: the run's config (solver, schedule, batch, cadence, loss settings, precision).
        model: the network on ``device`` (see :func:`place_model`), possibly DDP-wrapped; weights already loaded
            when resuming.
        batches: raw-Lab batches (n, 3, H, W) on ``device``, each one per-worker pass (colourless images already
            dropped; n may vary). An endless iterator for a full run.
        device: where training runs.
        class_weights: (Q,) rebalancing weights for families that use a prior (None: unweighted).
        resume: optimizer/scheduler/step/RNG state of a checkpoint; None starts fresh (and calibrates).
        validate: called as ``validate(bare_network)`` on the validation cadence and at the end; pass it on the
            ranks that validate (usually rank 0 only; the bare network is used, so DDP runs no collective).
        hooks: callbacks (logging, checkpoints, progress line, Ray reports).
        rank: this worker's rank (seeds the loss's generator).
        world_size: number of workers (sets the accumulation that keeps the global batch).

    Returns:
        The summary of the run (also passed to ``on_end``).
    """
    device = torch.device(device)
    adapter = adapter_for(model)
    core = adapter.core(model)
    accumulation = config.accumulation_steps(world_size)
    per_worker = config.per_worker_batch(world_size)
    max_steps = config.schedule.max_steps
    cadence = config.cadence

    optimizer = build_optimizer(model, config.optimizer)
    scheduler = build_scheduler(optimizer, config.schedule)
    loss_generator = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + rank)
    step = 0
    calibration: dict[str, float] = {}
    first_batch: torch.Tensor | None = None
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        _restore_rng(resume.rng, loss_generator)
        step = resume.step
    else:
        first_batch = next(batches, None)
        if first_batch is not None:
            with torch.no_grad():
                calibration = adapter.calibrate(model, first_batch)
    dtype = autocast_dtype(config, device)
    channels_last = uses_channels_last(config, device)
    network = MixedPrecision(model, dtype) if dtype is not None else model
    loss_inputs = loss_inputs_for(
        config, class_weights=None if class_weights is None else class_weights.to(device), generator=loss_generator
    )
    start = LoopStart(
        start_step=step,
        max_steps=max_steps,
        per_worker_batch=per_worker,
        accumulation=accumulation,
        world_size=world_size,
        rank=rank,
        device=str(device),
        autocast=str(dtype).replace("torch.", "") if dtype is not None else "float32",
        channels_last=channels_last,
        calibration=calibration,
    )
    for hook in hooks:
        hook.on_start(start)

    def next_batch() -> torch.Tensor | None:
        nonlocal first_batch
        if first_batch is not None:
            batch, first_batch = first_batch, None
            return batch
        return next(batches, None)

    start_step = step
    began = window_began = time.perf_counter()
    data_wait = window_wait = 0.0
    images = window_images = window_steps = 0
    sums: dict[str, torch.Tensor] = {}
    skipped = consecutive_skipped = 0
    last_metrics: dict[str, float] = {}
    last_validation: dict[str, float] = {}
    stopped_early = False
    model.train()

    def snapshot(metrics: dict[str, float]) -> Snapshot:
        state = TrainingState(
            step=step,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=_rng_states(loss_generator),
            extra={"images_this_run": images * world_size, "skipped_steps": skipped},
        )
        return Snapshot(model=core, state=state, config=config, metrics=dict(metrics))

    while step < max_steps:
        terms_this_step: dict[str, torch.Tensor] = {}
        for index in range(accumulation):
            waited = time.perf_counter()
            lab = next_batch()
            window_wait += time.perf_counter() - waited
            if lab is None:
                stopped_early = True
                break
            if channels_last:
                lab = lab.contiguous(memory_format=torch.channels_last)
            with _no_sync(model, sync=index == accumulation - 1):
                terms = adapter.loss_terms(network, lab, loss_inputs)
                (terms.loss / accumulation).backward()
            window_images += lab.shape[0]
            for name, value in {"loss": terms.loss.detach(), **terms.logged}.items():
                terms_this_step[name] = terms_this_step.get(name, 0.0) + value.detach().float() / accumulation
        if stopped_early:
            optimizer.zero_grad(set_to_none=True)
            break
        max_norm = config.optimizer.grad_clip if config.optimizer.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if torch.isfinite(grad_norm):
            optimizer.step()
            consecutive_skipped = 0
        else:
            skipped += 1
            consecutive_skipped += 1
            if consecutive_skipped >= MAX_CONSECUTIVE_SKIPPED_STEPS:
                raise FloatingPointError(
                    f"gradients were not finite for {consecutive_skipped} steps in a row (step {step}): "
                    "the run diverged; lower optimizer.lr or set optimizer.grad_clip"
                )
        optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped step still advances the schedule; torch warns about that
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
        step += 1
        window_steps += 1
        terms_this_step["grad_norm"] = grad_norm.detach().float()
        for name, value in terms_this_step.items():
            sums[name] = sums.get(name, 0.0) + value

        final = step == max_steps
        if (cadence.log_every and step % cadence.log_every == 0) or final:
            elapsed = time.perf_counter() - window_began
            metrics = {name: float(value) / window_steps for name, value in sums.items()}
            rate = window_images / elapsed if elapsed > 0 else 0.0
            steps_per_s = window_steps / elapsed if elapsed > 0 else 0.0
            metrics.update(
                lr=optimizer.param_groups[0]["lr"],
                images_per_s=rate * world_size,
                worker_images_per_s=rate,
                data_wait_fraction=window_wait / elapsed if elapsed > 0 else 0.0,
                eta_s=(max_steps - step) / steps_per_s if steps_per_s > 0 else math.inf,
                skipped_steps=float(skipped),
            )
            last_metrics = metrics
            for hook in hooks:
                hook.on_log(step, metrics)
            images += window_images
            data_wait += window_wait
            sums, window_images, window_steps, window_wait = {}, 0, 0, 0.0
            window_began = time.perf_counter()
        paused = time.perf_counter()  # validation and checkpoints are not training time
        if validate is not None and ((cadence.validate_every and step % cadence.validate_every == 0) or final):
            result = validate(core)
            model.train()
            last_validation = result.metrics
            for hook in hooks:
                hook.on_validation(step, result)
        if (cadence.checkpoint_every and step % cadence.checkpoint_every == 0) or final:
            taken = snapshot(last_metrics)
            for hook in hooks:
                hook.on_checkpoint(step, taken, final)
        window_began += time.perf_counter() - paused

    images += window_images
    data_wait += window_wait
    if stopped_early and step > start_step:
        taken = snapshot(last_metrics)
        for hook in hooks:
            hook.on_checkpoint(step, taken, True)
    seconds = time.perf_counter() - began
    summary = TrainSummary(
        step=step,
        start_step=start_step,
        images=images,
        seconds=seconds,
        data_wait_fraction=data_wait / seconds if seconds > 0 else 0.0,
        skipped_steps=skipped,
        stopped_early=stopped_early,
        last_metrics=last_metrics,
        last_validation=last_validation,
    )
    for hook in hooks:
        hook.on_end(summary)
    return summary
