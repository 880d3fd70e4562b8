"""``TrainConfig``: everything one training run needs, as one frozen, typed, validated dataclass.

A recipe file (``colorization/training/recipes/*.yaml``) is a nested mapping of these fields; ``key=value``
overrides (dotted keys: ``optimizer.lr=1e-4``) change single values and are typed against the field they name.
The config crosses process boundaries as plain data: Ray Train receives ``dataclasses.asdict(config)`` and the
worker rebuilds it on its first line with :meth:`TrainConfig.from_dict` (``from_dict(asdict(c)) == c``; JSON round
trips too, lists become tuples). Every value is checked when a config is built, so a wrong recipe or override fails
with one :class:`~colorization.errors.UserError` line before any data is read or Ray is started.

Batch sizes: ``batch.global_size`` images enter each optimizer step, whatever the number of workers; each worker
draws ``batch.per_worker`` images per forward pass and accumulates ``global / (per_worker * workers)`` passes
(:meth:`TrainConfig.accumulation_steps`), so the solver sees the same batch on 1 CPU and on 8 GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from colorization.color.constants import (
    LARSSON_HUE_WEIGHT,
    PRIOR_UNIFORM_MIX,
    SOFT_ENCODE_NEIGHBOURS,
    SOFT_ENCODE_SIGMA,
)
from colorization.errors import UserError

__all__ = [
    "BatchConfig",
    "CadenceConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScalingConfig",
    "ScheduleConfig",
    "TrainConfig",
    "OPTIMIZERS",
    "PRECISIONS",
]

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 autocast on a GPU, float32 on a CPU
_SIZE_MULTIPLE = 8  # both networks need crops that are multiples of 8 (three stride-2 halvings)
_MAX_PARAM_SEQUENCE = 16  # longer sequences (bin sets) are arrays: logged as an artifact, not as params


def _fail(name: str, reason: str) -> None:
    raise UserError(f"training config: {name} {reason}")


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        _fail(name, f"must be an integer >= {0 if allow_zero else 1}; got {value!r}")


def _finite(name: str, value: Any, *, low: float | None = None, high: float | None = None, open_low: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(name, f"must be a finite number; got {value!r}")
    if low is not None and (value < low or (open_low and value == low)):
        _fail(name, f"must be {'>' if open_low else '>='} {low:g}; got {value!r}")
    if high is not None and value > high:
        _fail(name, f"must be <= {high:g}; got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which network: a registered variant (``models.registry.list_models()``) and overrides of its config.

    Attributes:
        variant: e.g. ``zhang_eccv16``, ``larsson_hypercolumn``.
        overrides: fields of the family's config, e.g. ``{"width_multiplier": 0.25, "input_size": 64}`` or
            Larsson's ``{"heads": ["hue_chroma", "l2"]}``; checked by building the config (not the network).
    """

    variant: str = "zhang_eccv16"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            _fail("model.variant", f"must name a registered model; got {self.variant!r}")
        if not isinstance(self.overrides, dict):
            _fail("model.overrides", f"must be a mapping of config fields; got {self.overrides!r}")
        object.__setattr__(self, "overrides", {str(k): _lists_to_tuples(v) for k, v in self.overrides.items()})


@dataclass(frozen=True)
class DataConfig:
    """Where the Lab shards are and how training images are drawn from them.

    Attributes:
        shards: output folder of ``colorization preprocess`` (manifest.json); None until given (``--shards``).
        train_split: split trained on.
        val_split: split validated on (the photos the model never trains on).
        resize: shard images (S x S, 256 by default) are first resized to this side (area filter) when set:
            small local recipes train on whole downscaled photos, as the Colorizer sees them; None keeps S.
        crop: side of the random training crop (paper: 176 from 256); a multiple of 8.
        flip: mirror half of the training crops left-right.
        scale: zoom augmentation, (min, max) fractions of the stored image's area: each training crop is then a
            random square window of that area (side sqrt(f) * S, f uniform), shrunk to crop x crop by averaging.
            Needs ``resize`` (the worker, not Ray Data, cuts such crops; ``resize`` still frames validation).
            None: resize, then a plain random crop.
        val_size: side of the validation images (resized like ``resize``, then centre-cropped to this).
        loader_workers: DataLoader worker processes of the plain-PyTorch path (0: load in the training process).
        shuffle_buffer: rows mixed in the plain path's shuffle buffer (row groups arrive in a shuffled order).
    """

    shards: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    resize: int | None = None
    crop: int = 176
    flip: bool = True
    scale: tuple[float, float] | None = None
    val_size: int = 176
    loader_workers: int = 0
    shuffle_buffer: int = 256

    def __post_init__(self) -> None:
        if self.shards is not None and (not isinstance(self.shards, str) or not self.shards):
            _fail("data.shards", f"must be a folder path; got {self.shards!r}")
        for name in ("train_split", "val_split"):
            if getattr(self, name) not in ("train", "val", "test"):
                _fail(f"data.{name}", f"must be one of train, val, test; got {getattr(self, name)!r}")
        if self.resize is not None:
            _positive_int("data.resize", self.resize)
        for name in ("crop", "val_size"):
            value = getattr(self, name)
            _positive_int(f"data.{name}", value)
            if value % _SIZE_MULTIPLE:
                _fail(f"data.{name}", f"must be a multiple of {_SIZE_MULTIPLE}; got {value}")
            if self.resize is not None and value > self.resize:
                _fail(f"data.{name}", f"({value}) must not exceed data.resize ({self.resize})")
        if not isinstance(self.flip, bool):
            _fail("data.flip", f"must be true or false; got {self.flip!r}")
        if self.scale is not None:
            object.__setattr__(self, "scale", _lists_to_tuples(self.scale))
            if not isinstance(self.scale, tuple) or len(self.scale) != 2:
                _fail("data.scale", f"must be two area fractions [min, max]; got {self.scale!r}")
            for fraction in self.scale:
                _finite("data.scale", fraction, low=0.0, high=1.0, open_low=True)
            if self.scale[0] > self.scale[1]:
                _fail("data.scale", f"must be [min, max] with min <= max; got {list(self.scale)}")
            if self.resize is None:
                _fail("data.scale", "needs data.resize (zoomed crops are cut from whole images on the worker)")
        _positive_int("data.loader_workers", self.loader_workers, allow_zero=True)
        _positive_int("data.shuffle_buffer", self.shuffle_buffer)


@dataclass(frozen=True)
class OptimizerConfig:
    """The solver.

    Attributes:
        name: ``adam`` (Zhang et al.) or ``sgd`` (Larsson et al.).
        lr: base learning rate.
        betas: Adam's (beta1, beta2).
        momentum: SGD momentum.
        weight_decay: L2 on weights (Caffe's ``weight_decay``).
        bias_lr_mult: learning-rate multiplier of biases and other 1-D parameters (Caffe ``lr_mult: 2``).
        bias_weight_decay: whether 1-D parameters decay too (Caffe ``decay_mult: 0`` is False).
        grad_clip: clip the global gradient norm to this; None for no clipping (neither paper clips).
    """

    name: str = "adam"
    lr: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.99)
    momentum: float = 0.9
    weight_decay: float = 1e-3
    bias_lr_mult: float = 1.0
    bias_weight_decay: bool = True
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            _fail("optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}; got {self.name!r}")
        _finite("optimizer.lr", self.lr, low=0.0, open_low=True)
        if len(self.betas) != 2:
            _fail("optimizer.betas", f"must be two numbers; got {self.betas!r}")
        for beta in self.betas:
            _finite("optimizer.betas", beta, low=0.0, high=1.0)
        _finite("optimizer.momentum", self.momentum, low=0.0, high=1.0)
        _finite("optimizer.weight_decay", self.weight_decay, low=0.0)
        _finite("optimizer.bias_lr_mult", self.bias_lr_mult, low=0.0)
        if not isinstance(self.bias_weight_decay, bool):
            _fail("optimizer.bias_weight_decay", f"must be true or false; got {self.bias_weight_decay!r}")
        if self.grad_clip is not None:
            _finite("optimizer.grad_clip", self.grad_clip, low=0.0, open_low=True)


@dataclass(frozen=True)
class ScheduleConfig:
    """How long and at which learning rate.

    Attributes:
        max_steps: optimizer steps of the run.
        lr_steps: steps at which the lr is multiplied by ``gamma`` (Zhang: 225k; Larsson: 1.0M, 1.5M, 1.75M).
        gamma: the factor applied at each of ``lr_steps``.
        warmup_steps: linear warm-up from 0 over this many steps (0: none, as in both papers).
    """

    max_steps: int = 450_000
    lr_steps: tuple[int, ...] = (225_000,)
    gamma: float = 0.1
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _positive_int("schedule.max_steps", self.max_steps)
        for step in self.lr_steps:
            _positive_int("schedule.lr_steps", step)
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            _fail("schedule.lr_steps", f"must increase strictly; got {list(self.lr_steps)}")
        _finite("schedule.gamma", self.gamma, low=0.0, high=1.0, open_low=True)
        _positive_int("schedule.warmup_steps", self.warmup_steps, allow_zero=True)


@dataclass(frozen=True)
class BatchConfig:
    """Images per optimizer step (constant across worker counts) and per forward pass.

    Attributes:
        global_size: images per optimizer step, summed over workers and accumulated passes (Zhang: 40).
        per_worker: images per forward pass on one worker; None takes ``global_size / workers`` (no accumulation).
    """

    global_size: int = 40
    per_worker: int | None = None

    def __post_init__(self) -> None:
        _positive_int("batch.global_size", self.global_size)
        if self.per_worker is not None:
            _positive_int("batch.per_worker", self.per_worker)
            if self.per_worker > self.global_size:
                _fail("batch.per_worker", f"({self.per_worker}) must not exceed batch.global_size ({self.global_size})")


@dataclass(frozen=True)
class LossConfig:
    """The loss and its rebalancing.

    Attributes:
        prior: ``colorization prior`` output (.npz or its folder); None trains without rebalancing. Needed only by
            families that use a prior (Zhang); its bins must be the model's.
        uniform_mix: lambda of the rebalancing weights (Sec. 2.2: 0.5).
        soft_encode_neighbours: Zhang's soft-encoding k (released code 10, paper 5).
        soft_encode_sigma: Zhang's soft-encoding kernel, ab units.
        hue_weight: Larsson's lambda_H.
    """

    prior: str | None = None
    uniform_mix: float = PRIOR_UNIFORM_MIX
    soft_encode_neighbours: int = SOFT_ENCODE_NEIGHBOURS
    soft_encode_sigma: float = SOFT_ENCODE_SIGMA
    hue_weight: float = LARSSON_HUE_WEIGHT

    def __post_init__(self) -> None:
        if self.prior is not None and (not isinstance(self.prior, str) or not self.prior):
            _fail("loss.prior", f"must be a file or folder path; got {self.prior!r}")
        _finite("loss.uniform_mix", self.uniform_mix, low=0.0, high=1.0)
        _positive_int("loss.soft_encode_neighbours", self.soft_encode_neighbours)
        _finite("loss.soft_encode_sigma", self.soft_encode_sigma, low=0.0, open_low=True)
        _finite("loss.hue_weight", self.hue_weight, low=0.0)


@dataclass(frozen=True)
class CadenceConfig:
    """How often the loop logs, validates and checkpoints (in optimizer steps; 0 turns one off).

    Attributes:
        log_every: metrics (loss, lr, images/s, data wait) and the progress line.
        validate_every: validation on ``val_images`` images of the validation split (and at the end).
        checkpoint_every: training state (and at the end, always).
        val_images: validation images scored each time (the first ones of the split: the same every time).
        sample_images: of those, how many make the logged sample grid (grey | prediction | truth).
        keep_checkpoints: checkpoints kept on disk (older ones are removed; the final one is always kept).
    """

    log_every: int = 50
    validate_every: int = 5_000
    checkpoint_every: int = 5_000
    val_images: int = 500
    sample_images: int = 8
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        for name in ("log_every", "validate_every", "checkpoint_every", "sample_images"):
            _positive_int(f"cadence.{name}", getattr(self, name), allow_zero=True)
        _positive_int("cadence.val_images", self.val_images)
        _positive_int("cadence.keep_checkpoints", self.keep_checkpoints)
        if self.sample_images > self.val_images:
            _fail("cadence.sample_images", f"({self.sample_images}) must not exceed val_images ({self.val_images})")


@dataclass(frozen=True)
class ScalingConfig:
    """Where the loop runs.

    Attributes:
        num_workers: Ray Train workers; 0 runs the plain-PyTorch loop in this process (no Ray).
        use_gpu: one GPU per worker (or for the plain loop); CPU otherwise.
        cpus_per_worker: CPUs reserved by each Ray Train worker (leave some to Ray Data on CPU-only machines).
        precision: ``auto`` (bf16 autocast on a GPU, float32 on a CPU), ``bf16`` or ``fp32``.
        channels_last: NHWC memory format; None turns it on with a GPU.
    """

    num_workers: int = 0
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    precision: str = "auto"
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        _positive_int("scaling.num_workers", self.num_workers, allow_zero=True)
        if not isinstance(self.use_gpu, bool):
            _fail("scaling.use_gpu", f"must be true or false; got {self.use_gpu!r}")
        _finite("scaling.cpus_per_worker", self.cpus_per_worker, low=0.0)
        if self.precision not in PRECISIONS:
            _fail("scaling.precision", f"must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            _fail("scaling.channels_last", f"must be true, false or null; got {self.channels_last!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (see the module docstring).

    Attributes:
        recipe: name of the recipe it came from (for the record; changes nothing).
        seed: seeds the model's initialization, the data order, crops, flips and Larsson's sampled pixels.
    """

    recipe: str = "custom"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    cadence: CadenceConfig = field(default_factory=CadenceConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, str) or not self.recipe:
            _fail("recipe", f"must be a name; got {self.recipe!r}")
        _positive_int("seed", self.seed, allow_zero=True)
        self.per_worker_batch(max(1, self.scaling.num_workers))  # refuses batches that do not divide

    # --- batch arithmetic ---------------------------------------------------------------------------------

    def per_worker_batch(self, num_workers: int) -> int:
        """Images per forward pass on one of ``num_workers`` workers (UserError when the global batch does not
        split into whole passes)."""
        workers = max(1, num_workers)
        per_worker = self.batch.per_worker or self.batch.global_size // workers
        if per_worker < 1 or self.batch.global_size % (per_worker * workers):
            _fail(
                "batch",
                f"global_size {self.batch.global_size} is not a whole number of passes of {workers} worker(s) "
                f"x per_worker {per_worker}",
            )
        return per_worker

    def accumulation_steps(self, num_workers: int) -> int:
        """Forward/backward passes each worker accumulates per optimizer step."""
        return self.batch.global_size // (self.per_worker_batch(num_workers) * max(1, num_workers))

    # --- (de)serialization --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)`` (what Ray Train's ``train_loop_config`` carries)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The whole config as JSON (tuples become lists; :meth:`from_dict` reads it back)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuilds a config from :meth:`to_dict` / JSON / a recipe mapping; unknown keys and wrong types are
        refused with a UserError naming the key."""
        return _build(cls, values, "")

    def flatten(self) -> dict[str, Any]:
        """``{"optimizer.lr": 3e-05, ...}`` for MLflow params: scalars, None as "None", short sequences as text.

        Long sequences (bin sets given as model overrides) are left out: log :meth:`to_json` as an artifact.
        """
        flat: dict[str, Any] = {}
        _flatten_into(flat, "", self.to_dict())
        return flat


# ---------------------------------------------------------------------------------------------------------------
# Typed building from plain data
# ---------------------------------------------------------------------------------------------------------------


def _lists_to_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_lists_to_tuples(item) for item in value)
    return value


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        _fail(prefix.rstrip(".") or "config", f"must be a mapping; got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        _fail(f"{prefix}{unknown[0]}", f"is not a setting here; known: {', '.join(sorted(names))}")
    kwargs = {name: _coerce(values[name], hints[name], f"{prefix}{name}") for name in values}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:  # raised by nested model-config checks
        raise UserError(f"training config: {prefix.rstrip('.') or 'config'}: {error}") from None


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` as type ``hint`` (int, float, bool, str, tuple, dict, Optional, nested dataclass), or UserError."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{name}.")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            _fail(name, "must not be null")
        (inner,) = [option for option in options if option is not type(None)]
        return _coerce(value, inner, name)
    if hint is Any:
        return _lists_to_tuples(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(name, f"must be a list; got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0], name) for item in value)
        if len(value) != len(args):
            _fail(name, f"must have {len(args)} items; got {list(value)!r}")
        return tuple(_coerce(item, arg, name) for item, arg in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(name, f"must be a mapping; got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            _fail(name, f"must be true or false; got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            _fail(name, f"must be an integer; got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(name, f"must be a number; got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(name, f"must be text; got {value!r}")
        return value
    raise TypeError(f"no coercion for {name}: {hint}")  # a programming error in this module


def _flatten_into(flat: dict[str, Any], prefix: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten_into(flat, f"{name}.", value)
        elif isinstance(value, (list, tuple)):
            nested = any(isinstance(item, (list, tuple, dict)) for item in value)
            if len(value) <= _MAX_PARAM_SEQUENCE and not nested:
                flat[name] = ",".join(str(item) for item in value)
        elif value is None:
            flat[name] = "None"
        else:
            flat[name] = value
