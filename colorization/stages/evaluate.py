"""The evaluation stage: score models and the grey baseline on one split with one protocol, write the report.

``run(EvaluateConfig(...))`` checks every argument, output path and model BEFORE any compute or Ray start (a
model that is not a colorizer, a missing file or alias: one :class:`UserError` line), then scores

* the grey baseline (always), and every (model, decoder, T) of each model's sweep (``evaluation.sweep``),
* on image files (``images``; the protocol's 256 x 256 centre crops) or Lab shards (``shards`` + ``split``),
* in one process or with a Ray Data actor pool (``use_ray``; automatic from :data:`RAY_THRESHOLD` inputs);

and writes into ``out``: ``report.json`` (everything, including unreadable inputs by name), ``report.md`` and
``report.csv`` (the table), ``temperature_sweep.png`` and ``samples.png``; with ``mlflow`` it logs them as one
run tagged with each model's source and digest. Each model's recommended annealed-mean T is in the report
(``evaluation.report.recommend_temperature``); ``write_temperature`` saves a copy of a checkpoint with it as the
default (the original checkpoint is never modified).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from colorization.errors import UserError
from colorization.evaluation.protocol import EVAL_SIZE, grey_baseline, truth_from_shard, uint8_batch
from colorization.evaluation.report import (
    RECOMMENDATION_AUC_MARGIN,
    csv_table,
    markdown_table,
    recommend_temperature,
    report_rows,
)
from colorization.evaluation.scoring import GREY_MODEL, SweepScores
from colorization.evaluation.sweep import SweepEntry, custom_sweep
from colorization.io.safe_outputs import (
    check_output_dir,
    check_output_file,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

RAY_THRESHOLD = 200  # inputs from which Ray pays for its start-up (~6 s) on a 2-core machine
SAMPLE_IMAGES = 6  # rows of the sample grid: the first images of the (sorted) inputs
EXPERIMENT = "colorization-evaluation"
REPORT_FILES = ("report.json", "report.md", "report.csv", "temperature_sweep.png", "samples.png")


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything an evaluation needs.

    Attributes:
        models: checkpoint paths or ``models:/NAME@ALIAS`` URIs (may be empty: the grey baseline alone).
        out: output folder (created); may not be, or lie inside, an input.
        images: folder (or file) of images to score; give this or ``shards``.
        shards: output folder of ``colorization preprocess`` (holds manifest.json).
        split: the shards' split to score.
        bins: .npy of (Q, 2) ab bins for the rebalanced AuC; None: the in-gamut grid of step 10.
        size: the protocol's crop size for image files.
        decoders: decoders to sweep; None: the default sweep of each family.
        temperatures: annealed-mean temperatures; None: ``evaluation.sweep.DEFAULT_TEMPERATURES``.
        limit: score only the first N inputs (sorted files, or shard rows in file order).
        use_ray: True/False, or None to use Ray from RAY_THRESHOLD inputs (always for shards).
        address: Ray cluster address; None starts a local Ray (or joins $RAY_ADDRESS).
        num_cpus: CPUs of a local Ray.
        actors: Ray actor-pool size.
        batch_size: images per batch (and per forward pass).
        device: torch device of the single-process run.
        margin: AuC points the recommended T may lose against the best pooled AuC.
        write_temperature: write a copy of the (only) model's checkpoint with the recommended T here.
        mlflow: log the report as an MLflow run.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).
        experiment: MLflow experiment name.
        samples: rows of the sample grid (0: no grid).
    """

    models: tuple[str, ...]
    out: Path
    images: Path | None = None
    shards: Path | None = None
    split: str = "val"
    bins: Path | None = None
    size: int = EVAL_SIZE
    decoders: tuple[str, ...] | None = None
    temperatures: tuple[float, ...] | None = None
    limit: int | None = None
    use_ray: bool | None = None
    address: str | None = None
    num_cpus: int | None = None
    actors: int = 2
    batch_size: int = 16
    device: str = "cpu"
    margin: float = RECOMMENDATION_AUC_MARGIN
    write_temperature: Path | None = None
    mlflow: bool = True
    tracking_uri: str | None = None
    experiment: str = EXPERIMENT
    samples: int = SAMPLE_IMAGES

    def __post_init__(self) -> None:
        if (self.images is None) == (self.shards is None):
            raise UserError("give exactly one of --images DIR and --shards DIR")
        if self.size < 8:
            raise UserError(f"--size must be at least 8 pixels; got {self.size}")
        for name, value in (("--batch-size", self.batch_size), ("--actors", self.actors)):
            if value < 1:
                raise UserError(f"{name} must be a positive integer; got {value}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be a positive integer; got {self.limit}")
        if self.temperatures is not None and not all(math.isfinite(t) and t > 0 for t in self.temperatures):
            raise UserError(f"--temperatures must be positive numbers; got {list(self.temperatures)}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise UserError(f"--margin must be a number >= 0; got {self.margin}")
        if self.write_temperature is not None and len(self.models) != 1:
            raise UserError("--write-temperature needs exactly one --model (the checkpoint to copy)")


@dataclass(frozen=True)
class EvaluateResult:
    """What an evaluation produced."""

    out: Path
    files: dict[str, Path]
    rows: list[dict]
    recommendations: dict[str, dict | None]
    failures: list[tuple[str, str]]
    network_images: dict[str, int]
    seconds: float
    used_ray: bool
    mlflow_run_id: str | None = None
    temperature_checkpoint: Path | None = None
    skipped: bool = False
    models: dict[str, dict] = field(default_factory=dict)


def _mlflow_key(text: str) -> str:
    """``text`` with every character MLflow refuses in metric and tag names (e.g. '#', '@', ':', '=') as '_'."""
    return re.sub(r"[^A-Za-z0-9_\-./]", "_", text)


def _model_names(sources: tuple[str, ...]) -> list[str]:
    """Table names of the models: the checkpoint's stem or the URI; duplicates get #2, #3."""
    names: list[str] = []
    for source in sources:
        base = source if source.startswith("models:/") else Path(source).stem
        name, number = base, 1
        while name in names or name == GREY_MODEL:
            number += 1
            name = f"{base} #{number}"
        names.append(name)
    return names


def _load_models(config: EvaluateConfig) -> dict[str, dict]:
    """Loads each model once on the driver (validation); UserError for anything that is not a colorizer."""
    from colorization.families import adapter_for
    from colorization.inference import MODEL_URI_PREFIX, file_digest, load_model

    models = {}
    for name, source in zip(_model_names(config.models), config.models):
        model = load_model(source, device="cpu", tracking_uri=config.tracking_uri)
        try:
            adapter = adapter_for(model)
        except KeyError as error:
            raise UserError(f"model {source} is not a colorizer: {error.args[0]}") from None
        try:
            entries = custom_sweep(adapter, model, config.decoders, config.temperatures, (True, False))
        except ValueError as error:
            raise UserError(f"model {source}: {error}") from None
        digest = None if source.startswith(MODEL_URI_PREFIX) else file_digest(source)
        models[name] = {
            "source": source, "digest": digest, "family": adapter.family, "entries": entries, "model": model,
        }
    return models


def _inputs(config: EvaluateConfig) -> tuple[list[str], list[Path]]:
    """(image paths, shard paths) to score, sorted, limited; UserError when there is nothing."""
    if config.images is not None:
        from colorization.io.images import list_image_files

        if not config.images.exists():
            raise UserError(f"--images {config.images}: no such file or folder")
        paths = [str(path) for path in list_image_files(config.images)][: config.limit]
        if not paths:
            raise UserError(f"--images {config.images}: no image files found")
        return paths, []
    from colorization.io.manifest import MANIFEST_NAME, read_manifest, shard_files

    try:
        files = shard_files(config.shards, config.split, read_manifest(config.shards))
    except FileNotFoundError:
        raise UserError(
            f"--shards {config.shards} has no {MANIFEST_NAME}: run `colorization preprocess` first"
        ) from None
    except (ValueError, OSError) as error:
        raise UserError(f"--shards {config.shards}: {error}") from None
    if not files:
        raise UserError(f"--shards {config.shards} has no shards in split {config.split!r}")
    return [], files


def _load_bins(config: EvaluateConfig) -> tuple[np.ndarray, str]:
    from colorization.color.ab_bins import default_ab_bins
    from colorization.io.ab_bins_file import load_ab_bins

    if config.bins is None:
        return default_ab_bins().double().numpy(), "default in-gamut grid"
    try:
        return load_ab_bins(config.bins).double().numpy(), str(config.bins)
    except (OSError, ValueError, TypeError) as error:
        raise UserError(f"--bins {config.bins}: {error}") from None


def _check_outputs(config: EvaluateConfig) -> None:
    inputs = [path for path in (config.images, config.shards, config.bins) if path is not None]
    inputs += [Path(source) for source in config.models if not source.startswith("models:/")]
    check_output_dir(config.out, inputs=inputs, what="--out")
    if config.write_temperature is not None:
        check_output_file(
            config.write_temperature, inputs=inputs, suffixes=(".safetensors",), what="--write-temperature"
        )


def _score(
    config: EvaluateConfig, models: dict, bins: np.ndarray, image_paths, shard_paths, use_ray: bool
) -> SweepScores:
    from colorization.distributed.evaluate import EvaluateWorker, evaluate_locally, evaluate_with_ray

    worker_kwargs = {
        "models": [(name, info["source"]) for name, info in models.items()],
        "sweeps": {name: info["entries"] for name, info in models.items()},
        "bins": bins,
        "size": config.size,
        "split": config.split if shard_paths else None,
        "device": config.device,
        "batch_size": config.batch_size,
        "tracking_uri": config.tracking_uri,
    }
    if not use_ray:
        worker = EvaluateWorker(**worker_kwargs)
        return evaluate_locally(worker, image_paths=image_paths, shard_paths=shard_paths, batch_size=config.batch_size,
                                shard_limit=config.limit)
    from colorization.distributed.runtime import ray_session

    with ray_session(config.address, config.num_cpus):
        return evaluate_with_ray(
            worker_kwargs, image_paths=image_paths, shard_paths=shard_paths,
            batch_size=config.batch_size, actors=config.actors, shard_limit=config.limit,
        )


def _sample_truth(config: EvaluateConfig, image_paths: list[str], shard_paths: list[Path]) -> torch.Tensor:
    """The first ``config.samples`` readable ground truths, as (N, 3, S, S) uint8."""
    from colorization.io.images import ImageDecodeError, read_image, resize_shorter_side_and_center_crop

    if image_paths:
        crops = []
        for path in image_paths:
            if len(crops) == config.samples:
                break
            try:
                crops.append(np.asarray(resize_shorter_side_and_center_crop(read_image(path).rgb, config.size)))
            except ImageDecodeError:
                continue
        return uint8_batch(crops) if crops else torch.zeros((0, 3, config.size, config.size), dtype=torch.uint8)
    import pyarrow.parquet as pq

    from colorization.io.shards import read_shard_arrays

    table = pq.read_table(shard_paths[0], columns=["L", "ab"]).slice(0, config.samples)
    arrays = read_shard_arrays(table, ("L", "ab"))
    return truth_from_shard(arrays["L"], arrays["ab"])


def _samples_png(config: EvaluateConfig, models: dict, image_paths, shard_paths) -> bytes | None:
    from colorization.evaluation.plots import sample_grid_png
    from colorization.inference import Colorizer

    truth = _sample_truth(config, image_paths, shard_paths)
    if len(truth) == 0:
        return None

    def arrays(rgb: torch.Tensor) -> list[np.ndarray]:
        return [image.permute(1, 2, 0).numpy() for image in (rgb.clamp(0, 1) * 255).round().to(torch.uint8)]

    columns = [("grey (ab = 0)", arrays(grey_baseline(truth)))]
    images = list(truth.float().div(255.0))
    for name, info in models.items():
        colorizer = Colorizer(info["model"], batch_size=config.batch_size)
        default = info["entries"][0]
        colorized = torch.stack(colorizer.colorize_tensors(images, default.options))
        columns.append((f"{name}\n{default.label}", arrays(colorized)))
    columns.append(("ground truth", arrays(truth.float() / 255.0)))
    return sample_grid_png(columns)


def _write_temperature_checkpoint(config: EvaluateConfig, models: dict, recommendations: dict) -> Path | None:
    if config.write_temperature is None:
        return None
    from colorization.models.checkpoint import save_checkpoint
    from colorization.io.safe_outputs import atomic_write

    (name, info), = models.items()
    chosen = recommendations.get(name)
    if chosen is None:
        raise UserError(f"model {info['source']} has no temperature to recommend (its decoders have no T)")
    model = info["model"]
    old_config = model.config
    model.config = replace(old_config, temperature=float(chosen["temperature"]))
    try:
        with atomic_write(config.write_temperature) as temporary:
            save_checkpoint(model, temporary, extra={"recommended_by": "colorization evaluate", **chosen,
                                                     "source": info["source"], "source_digest": info["digest"]})
    finally:
        model.config = old_config
    return Path(config.write_temperature)


def _log_mlflow(config: EvaluateConfig, record: dict, files: dict[str, Path], models: dict) -> str:
    import mlflow

    from colorization.tracking import configure_tracking

    configure_tracking(config.experiment, config.tracking_uri)
    tags = {f"model.{_mlflow_key(name)}.source": info["source"] for name, info in models.items()}
    tags |= {f"model.{_mlflow_key(name)}.digest": info["digest"] or "" for name, info in models.items()}
    with mlflow.start_run(run_name="evaluate", tags=tags) as run:
        mlflow.log_params({"size": config.size, "split": config.split if config.shards else "images",
                           "bins": record["bins"], "models": ",".join(models) or "none",
                           "inputs": str(config.images or config.shards)})
        for row in record["rows"]:
            key = _mlflow_key(f"{row['model']}/{row['label']}")
            for metric in ("auc", "rebalanced_auc", "psnr", "colourfulness_pred"):
                if isinstance(row[metric], float) and math.isfinite(row[metric]):
                    mlflow.log_metric(f"{metric}/{key}"[:250], row[metric])
        for path in files.values():
            mlflow.log_artifact(str(path))
        return run.info.run_id


def _check_tracking(config: EvaluateConfig) -> None:
    """The tracking store is reachable before the work starts (issue 11: never fail after the work)."""
    if config.mlflow:
        from colorization.tracking import check_tracking_store

        check_tracking_store(config.tracking_uri)


def run(config: EvaluateConfig) -> EvaluateResult:
    """Validates, scores, writes the report (and logs it); see the module docstring."""
    from colorization.devices import resolve_device

    start = time.perf_counter()
    config = replace(config, device=str(resolve_device(config.device)))
    _check_outputs(config)
    bins, bins_source = _load_bins(config)
    image_paths, shard_paths = _inputs(config)
    models = _load_models(config)
    _check_tracking(config)
    use_ray = config.use_ray if config.use_ray is not None else bool(shard_paths) or len(image_paths) >= RAY_THRESHOLD

    scores = _score(config, models, bins, image_paths, shard_paths, use_ray)
    entries = {name: info["entries"] for name, info in models.items()}
    rows = report_rows(scores, entries)
    recommendations = {name: recommend_temperature(rows, name, config.margin) for name in models}
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    record = {
        "protocol": {"size": config.size, "crop": "shorter side to size, centre crop" if image_paths else "shard crops",
                     "colourless_rule": "max |ab| < 5 excluded and counted", "auc": "mean of the curve at t = 0..150",
                     "inputs": str(config.images or config.shards), "split": config.split if shard_paths else None},
        "bins": bins_source,
        "num_bins": len(bins),
        "models": {name: {k: info[k] for k in ("source", "digest", "family")} for name, info in models.items()},
        "rows": rows,
        "recommended_temperature": recommendations,
        "images_read": scores.images_read,
        "network_images": scores.network_images,
        "failures": [{"input": source, "reason": reason} for source, reason in scores.failures],
        "ray": use_ray,
    }
    write_text_atomic(out / "report.md", markdown_table(rows) + _failure_lines(scores.failures))
    write_text_atomic(out / "report.csv", csv_table(rows))
    files["report.md"], files["report.csv"] = out / "report.md", out / "report.csv"
    if any(row["temperature"] is not None for row in rows):
        from colorization.evaluation.plots import temperature_sweep_png

        write_bytes_atomic(out / "temperature_sweep.png", temperature_sweep_png(rows, GREY_MODEL))
        files["temperature_sweep.png"] = out / "temperature_sweep.png"
    if config.samples > 0:
        grid = _samples_png(config, models, image_paths, shard_paths)
        if grid is not None:
            write_bytes_atomic(out / "samples.png", grid)
            files["samples.png"] = out / "samples.png"
    temperature_checkpoint = _write_temperature_checkpoint(config, models, recommendations)
    record["seconds"] = time.perf_counter() - start
    write_json_atomic(out / "report.json", _json_safe(record))
    files["report.json"] = out / "report.json"
    run_id = _log_mlflow(config, record, files, models) if config.mlflow else None
    return EvaluateResult(
        out=out, files=files, rows=rows, recommendations=recommendations, failures=list(scores.failures),
        network_images=dict(scores.network_images), seconds=record["seconds"], used_ray=use_ray,
        mlflow_run_id=run_id, temperature_checkpoint=temperature_checkpoint,
        models={name: {k: info[k] for k in ("source", "digest", "family")} for name, info in models.items()},
    )


def _failure_lines(failures: list[tuple[str, str]]) -> str:
    if not failures:
        return ""
    return f"\n{len(failures)} input(s) could not be scored:\n\n" + "".join(f"- {s}: {r}\n" for s, r in failures)


def _json_safe(value):
    """NaN -> None (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value
