"""The whole system as one job: preprocess -> prior -> train both papers -> evaluate -> register (-> how to serve).

``run(PipelineConfig) -> PipelineResult`` calls the stages' own ``run(config)`` functions in order and hands each
the previous stages' typed results (``colorization/stages/pipeline_steps.py`` builds every stage's config):

* the shards' manifest digest and the prior's file and MLflow run id travel into both trainings;
* the trained models' registry versions (``models:/NAME/VERSION``) travel into the evaluation and into the
  ``colorization serve`` command printed at the end.

Idempotent: ``OUTPUT/pipeline.json`` records, for every finished stage, the digest of its config and what it
produced. A stage whose config digest is unchanged and whose outputs still exist is skipped (and says so); a
changed stage runs again, and so does everything downstream of it whose config changes with it. MLflow: one
parent run per output folder (``pipeline``), the stages' runs nested under it (``pipeline_tracking``).

Locally ``run`` starts one Ray for all stages (``num_cpus``); inside ``ray job submit`` it joins the cluster.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from colorization.errors import UserError

__all__ = ["PipelineConfig", "PipelineResult", "StageRecord", "run", "STATE_FILE", "STAGES", "DEFAULT_EXPERIMENT"]

STATE_FILE = "pipeline.json"
STAGES = ("preprocess", "prior", "train-zhang", "train-larsson", "evaluate", "register")
DEFAULT_EXPERIMENT = "colorization"
# Where and how wide a stage runs, not what it makes: left out of the digests (a rerun on a cluster may skip).
PLACEMENT_KEYS = frozenset({"address", "num_cpus", "actors"})
LOCAL_RECIPES = ("zhang-local", "larsson-local")
SMOKE_RECIPES = ("zhang-smoke", "larsson-smoke")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs.

    Attributes:
        output: folder for everything (``images/`` for the embedded default, ``shards/``, ``prior/``,
            ``train/zhang``, ``train/larsson``, ``evaluate/``, ``pipeline.json``).
        input: image folder or ImageNet tree; None writes the embedded sample photos into ``output/images``.
        size: crop side of the shards.
        val_fraction: share of the images held out for validation and evaluation.
        zhang_recipe, larsson_recipe: training recipes (shipped names or YAML files).
        train_overrides: ``key=value`` overrides applied to both recipes (e.g. ``schedule.max_steps=200``).
        zhang_steps, larsson_steps: optimizer steps of each training (None: the recipe's).
        num_workers: Ray Train workers per training (0: one process, no Ray Train: the fastest on a laptop).
        gpu: train and evaluate on GPUs.
        eval_limit: score at most N evaluation images (None: the whole split).
        register: register both trained models in MLflow's model registry.
        address: Ray cluster (None: $RAY_ADDRESS, else a local Ray).
        num_cpus: CPUs of a local Ray (None: all).
        tracking_uri: MLflow tracking URI (None: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).
        experiment: MLflow experiment of the parent run and every stage's run.
    """

    output: str
    input: str | None = None
    size: int = 128
    val_fraction: float = 0.2
    zhang_recipe: str = LOCAL_RECIPES[0]
    larsson_recipe: str = LOCAL_RECIPES[1]
    train_overrides: tuple[str, ...] = ()
    zhang_steps: int | None = None
    larsson_steps: int | None = None
    num_workers: int = 0
    gpu: bool = False
    eval_limit: int | None = None
    register: bool = True
    address: str | None = None
    num_cpus: int | None = None
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 8:
            raise UserError(f"--size must be a multiple of 8 and at least 16; got {self.size}")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must lie between 0 and 1; got {self.val_fraction}")
        for name, value in (("--zhang-steps", self.zhang_steps), ("--larsson-steps", self.larsson_steps),
                            ("--eval-limit", self.eval_limit)):
            if value is not None and value < 1:
                raise UserError(f"{name} must be a positive integer; got {value}")
        if self.num_workers < 0:
            raise UserError(f"--num-workers must be 0 or more; got {self.num_workers}")


@dataclass(frozen=True)
class StageRecord:
    """One stage of one pipeline run, as ``pipeline.json`` keeps it.

    Attributes:
        name: one of :data:`STAGES`.
        digest: of the stage's config (what decides whether a rerun may skip it).
        skipped: its outputs existed for the same config, so it did not run this time.
        seconds: wall time of this run of the stage (a skipped stage: the check alone).
        run_id: its MLflow run, if it has one.
        outputs: label -> path of what it produced (all must exist for a later skip).
        facts: what later stages need from it (manifest digest, model URI, the evaluation table ...).
    """

    name: str
    digest: str
    skipped: bool
    seconds: float
    run_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineResult:
    """What the pipeline produced: the stages in order, the parent MLflow run and how to serve the models."""

    output: str
    stages: tuple[StageRecord, ...]
    mlflow_run_id: str
    tracking_uri: str
    serve_command: str
    seconds: float
    skipped: bool = False  # every stage was skipped

    def stage(self, name: str) -> StageRecord:
        return next(record for record in self.stages if record.name == name)


def _without_placement(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_placement(item) for key, item in value.items() if key not in PLACEMENT_KEYS}
    if isinstance(value, (list, tuple)):
        return [_without_placement(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return _without_placement(asdict(value))
    return value


def config_digest(stage_config: Any) -> str:
    """A stable digest of what a stage's config makes (where and how wide it runs left out; paths as text)."""
    text = json.dumps(_without_placement(stage_config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_state(output: Path) -> dict[str, Any]:
    path = output / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged record only costs a rerun of every stage


def _write_state(output: Path, state: dict[str, Any]) -> None:
    from colorization.io.safe_outputs import write_json_atomic

    write_json_atomic(output / STATE_FILE, state)


def _reusable(previous: dict[str, Any] | None, digest: str) -> StageRecord | None:
    """The earlier record of a stage if its config is the same and everything it wrote still exists."""
    if not previous or previous.get("digest") != digest:
        return None
    record = StageRecord(**previous)
    if not all(Path(path).exists() for path in record.outputs.values()):
        return None
    return record


def _progress(index: int, name: str, message: str) -> None:
    print(f"[pipeline {index}/{len(STAGES)}] {name}: {message}", flush=True)


def check(config: PipelineConfig) -> tuple[Path, Path | None]:
    """Checks the input and the output folder before Ray starts; returns them resolved."""
    from colorization.io.safe_outputs import check_output_dir, resolve_path

    source = None
    if config.input is not None:
        source = resolve_path(config.input, "--input")
        if not source.exists():
            raise UserError(f"--input {config.input}: not found")
    output = check_output_dir(config.output, inputs=[source] if source else [], what="--output")
    return output, source


def run(config: PipelineConfig) -> PipelineResult:
    """Runs (or resumes) every stage into ``config.output``; see the module docstring."""
    from colorization.distributed.runtime import ray_session
    from colorization.stages import pipeline_steps
    from colorization.stages.pipeline_tracking import ParentRun

    output, source = check(config)
    pipeline_steps.check_recipes(config)  # bad recipes and overrides fail before any work
    output.mkdir(parents=True, exist_ok=True)
    if source is None:
        from colorization.stages.sample_data import write_sample_images

        source = write_sample_images(output / "images")
    state = _read_state(output)
    previous = {record["name"]: record for record in state.get("stages", [])}
    parent = ParentRun(config.tracking_uri, config.experiment, state.get("mlflow_run_id"))
    parent.log_params({"input": source, "output": output, **{k: v for k, v in asdict(config).items()
                                                            if k not in ("input", "output", "address")}})
    started = time.perf_counter()
    records: list[StageRecord] = []
    context = pipeline_steps.StageContext(config=config, output=output, source=source, tracking_uri=parent.tracking_uri)
    succeeded = False
    try:
        with ray_session(config.address, config.num_cpus):
            pipeline_steps.describe_cluster()
            for index, name in enumerate(STAGES, start=1):
                step = pipeline_steps.STEPS[name]
                stage_config = step.build(context)
                if stage_config is None:
                    _progress(index, name, "not requested")
                    continue
                digest = config_digest(stage_config)
                begin = time.perf_counter()
                record = _reusable(previous.get(name), digest)
                if record is not None:
                    record = replace(record, skipped=True, seconds=round(time.perf_counter() - begin, 3))
                    _progress(index, name, f"skipped: its outputs exist for the same config ({step.summary(record)})")
                else:
                    _progress(index, name, "running ...")
                    record = step.execute(context, stage_config, name, digest)
                    record = replace(record, seconds=round(time.perf_counter() - begin, 1))
                    _progress(index, name, f"done in {record.seconds:.1f} s ({step.summary(record)})")
                context.records[name] = record
                records.append(record)
                if record.run_id:
                    parent.adopt(record.run_id, name)
                parent.log_metrics({f"seconds.{name}": record.seconds})
                _write_state(output, _state(config, parent, records))
        succeeded = True
    finally:
        parent.finish(succeeded)
    serve_command = pipeline_steps.serve_command(context)
    seconds = round(time.perf_counter() - started, 1)
    parent.log_metrics({"seconds.total": seconds})
    parent.set_tags({"serve_command": serve_command, **pipeline_steps.lineage_tags(context)})
    _write_state(output, _state(config, parent, records, serve_command=serve_command, seconds=seconds))
    parent.log_artifact(str(output / STATE_FILE))
    return PipelineResult(
        output=str(output),
        stages=tuple(records),
        mlflow_run_id=parent.run_id,
        tracking_uri=parent.tracking_uri,
        serve_command=serve_command,
        seconds=seconds,
        skipped=all(record.skipped for record in records),
    )


def _state(config: PipelineConfig, parent, records: list[StageRecord], **extra: Any) -> dict[str, Any]:
    return {
        "config": asdict(config),
        "mlflow_run_id": parent.run_id,
        "tracking_uri": parent.tracking_uri,
        "experiment": config.experiment,
        "stages": [asdict(record) for record in records],
        **extra,
    }
