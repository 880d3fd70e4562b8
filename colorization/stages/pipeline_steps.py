"""The pipeline's steps: how each stage's config is built from the pipeline config and the earlier stages' results,
and what of its result the later stages need.

Each :class:`Step` has ``build(context) -> stage config | None`` (None: not requested), ``execute(context,
stage_config, name, digest) -> StageRecord`` and ``summary(record) -> str`` (one line of progress). A stage config
is whatever decides the stage's outputs, so its digest decides whether a rerun may skip it; upstream facts that
must invalidate it (the shards' manifest digest, the prior's file digest and MLflow run) are part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colorization.errors import UserError
from colorization.stages.pipeline import PipelineConfig, StageRecord

__all__ = ["STEPS", "Step", "StageContext", "check_recipes", "describe_cluster", "lineage_tags", "serve_command"]

FAMILIES = ("zhang", "larsson")
CHAMPION_ALIAS = "champion"  # set by the register step on the versions the evaluation scored
EVALUATE_MAX_ACTORS = 8
EVALUATE_RAY_FROM = 200  # evaluation images from which the Ray actor pool pays for its start-up
SHARD_MB = 8.0  # small shards: a few hundred images each at 128 px, so Ray Data has blocks to spread


@dataclass
class StageContext:
    """What the steps share: the pipeline config, resolved folders and the records of the stages done so far."""

    config: PipelineConfig
    output: Path
    source: Path
    tracking_uri: str
    records: dict[str, StageRecord] = field(default_factory=dict)

    def folder(self, *parts: str) -> Path:
        return self.output.joinpath(*parts)


@dataclass(frozen=True)
class Step:
    build: Callable[[StageContext], Any]
    execute: Callable[[StageContext, Any, str, str], StageRecord]
    summary: Callable[[StageRecord], str]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def describe_cluster() -> None:
    """One line: where the pipeline runs (a laptop's local Ray or the cluster it joined)."""
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    gpus = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
    print(f"[pipeline] Ray: {len(nodes)} node(s), {resources.get('CPU', 0):g} CPUs{gpus}", flush=True)


# -- preprocess ---------------------------------------------------------------------------------------------------


def _preprocess_build(context: StageContext):
    from colorization.stages.preprocess import PreprocessStageConfig

    return PreprocessStageConfig(
        input_root=str(context.source),
        output_dir=str(context.folder("shards")),
        size=context.config.size,
        val_fraction=context.config.val_fraction,
        target_shard_mb=SHARD_MB,
        address=context.config.address,
        num_cpus=context.config.num_cpus,
    )


def _preprocess_execute(context: StageContext, stage_config, name: str, digest: str) -> StageRecord:
    from colorization.stages import preprocess

    result = preprocess.run(stage_config)
    counts = result.manifest["counts"]
    return StageRecord(
        name=name,
        digest=digest,
        skipped=result.skipped,
        seconds=0.0,
        outputs={"shards": str(result.output_dir), "manifest": str(result.manifest_path)},
        facts={
            "manifest_digest": result.manifest_digest,
            "written": counts["written"],
            "failed": counts["failed"],
            "splits": {split: info["written"] for split, info in result.manifest["splits"].items()},
        },
    )


def _preprocess_summary(record: StageRecord) -> str:
    facts = record.facts
    splits = ", ".join(f"{split} {count}" for split, count in facts.get("splits", {}).items())
    written, failed = facts.get("written"), facts.get("failed")
    return f"{written} images written ({splits}), {failed} failed -> {record.outputs['shards']}"


# -- prior --------------------------------------------------------------------------------------------------------


def _prior_build(context: StageContext):
    from colorization.stages.prior import PriorConfig

    preprocess = context.records["preprocess"]
    config = PriorConfig(
        shards_dir=preprocess.outputs["shards"],
        out=str(context.folder("prior")),
        experiment=context.config.experiment,
        tracking_uri=context.tracking_uri,
        address=context.config.address,
        num_cpus=context.config.num_cpus,
    )
    return {"stage": config, "manifest_digest": preprocess.facts["manifest_digest"]}


def _prior_execute(context: StageContext, stage_config: dict, name: str, digest: str) -> StageRecord:
    from colorization.stages import prior

    result = prior.run(stage_config["stage"])
    npz, json_path, png = result.paths
    return StageRecord(
        name=name,
        digest=digest,
        skipped=result.skipped,
        seconds=0.0,
        run_id=result.run_id,
        outputs={"prior": str(npz), "prior_json": str(json_path), "picture": str(png)},
        facts={
            "images": result.images,
            "colourless": result.colourless,
            "pixels": result.pixels,
            "bins": result.num_bins,
            "manifest_digest": result.manifest_digest,
            "prior_digest": _file_digest(npz),
        },
    )


def _prior_summary(record: StageRecord) -> str:
    facts = record.facts
    return f"{facts.get('images')} images, {facts.get('pixels', 0):,} pixels -> {record.outputs['picture']}"


# -- train (one step per family) ----------------------------------------------------------------------------------


def _recipe(config: PipelineConfig, family: str) -> str:
    return config.zhang_recipe if family == "zhang" else config.larsson_recipe


def _train_overrides(config: PipelineConfig, family: str) -> list[str]:
    overrides = list(config.train_overrides)
    steps = config.zhang_steps if family == "zhang" else config.larsson_steps
    if steps is not None:
        overrides.append(f"schedule.max_steps={steps}")
    overrides += [f"scaling.num_workers={config.num_workers}", f"scaling.use_gpu={str(config.gpu).lower()}"]
    return overrides


def check_recipes(config: PipelineConfig) -> None:
    """Loads both recipes with the pipeline's overrides: a bad name, key or value fails before any work."""
    from colorization.training.recipes import load_recipe

    for family in FAMILIES:
        load_recipe(_recipe(config, family), _train_overrides(config, family))


def _train_build(family: str):
    def build(context: StageContext):
        from colorization.stages.train import TrainStageConfig
        from colorization.training.recipes import load_recipe

        prior = context.records["prior"]
        overrides = _train_overrides(context.config, family) + [
            f"data.shards={context.records['preprocess'].outputs['shards']}",
            f"loss.prior={prior.outputs['prior']}",
        ]
        train = load_recipe(_recipe(context.config, family), overrides)
        stage = TrainStageConfig(
            train=train,
            out=str(context.folder("train", family)),
            tracking_uri=context.tracking_uri,
            experiment=context.config.experiment,
            address=context.config.address,
        )
        return {
            "stage": stage,
            "manifest_digest": context.records["preprocess"].facts["manifest_digest"],
            "prior_digest": prior.facts["prior_digest"],
            "prior_run_id": prior.run_id,
        }

    return build


def _publish_model(source: Path, target: Path) -> Path:
    """A copy of the final network named after its family (what evaluation tables and `serve --model` show)."""
    import shutil

    from colorization.io.safe_outputs import atomic_write

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as temporary:
        shutil.copyfile(source, temporary)
    return target


def _train_execute(family: str):
    def execute(context: StageContext, stage_config: dict, name: str, digest: str) -> StageRecord:
        from colorization.stages import train as train_stage
        from colorization.stages.pipeline_registry import log_training_run, register_trained_model

        stage = stage_config["stage"]
        result = train_stage.run(stage)
        model = _publish_model(Path(result.model_path), context.folder("models", f"{family}.safetensors"))
        lineage = {key: stage_config[key] for key in ("manifest_digest", "prior_digest", "prior_run_id")}
        summary = result.summary or {}
        run_id = result.mlflow_run_id or summary.get("mlflow_run_id")
        if run_id is None:  # the one-process path logs no run: the pipeline logs it from the result
            run_id = log_training_run(context.tracking_uri, context.config.experiment, family, stage.train, result,
                                      lineage)
        version = None
        if context.config.register:
            version = register_trained_model(context.tracking_uri, result.model_path, run_id, summary)
        validation = {key: float(value) for key, value in (result.validation or {}).items()}
        return StageRecord(
            name=name,
            digest=digest,
            skipped=result.skipped,
            seconds=0.0,
            run_id=run_id,
            outputs={"model": str(model), "folder": result.out},
            facts={
                "family": family,
                "recipe": stage.train.recipe,
                "variant": stage.train.model.variant,
                "steps": result.step,
                "images_per_s": summary.get("images_per_s"),
                "validation": validation,
                "model_digest": _file_digest(model),
                "registered": version,
                **lineage,
            },
        )

    return execute


def _train_summary(record: StageRecord) -> str:
    facts = record.facts
    loss = facts.get("validation", {}).get("loss")
    loss_text = f", validation loss {loss:.3f}" if loss is not None else ""
    return f"{facts.get('variant')} {facts.get('steps')} steps{loss_text} -> {record.outputs['model']}"


# -- evaluate -----------------------------------------------------------------------------------------------------


def _evaluate_actors() -> int:
    """Colorizer actors: one CPU each, leaving one CPU for reading the shards (on 2 cores, more deadlocks)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(EVALUATE_MAX_ACTORS, cpus - 1))


def _evaluate_build(context: StageContext):
    from colorization.stages.evaluate import EvaluateConfig

    models = tuple(context.records[f"train-{family}"].outputs["model"] for family in FAMILIES)
    images = context.records["preprocess"].facts.get("splits", {}).get("val", 0)
    return EvaluateConfig(
        models=models,
        out=context.folder("evaluate"),
        shards=Path(context.records["preprocess"].outputs["shards"]),
        split="val",
        limit=context.config.eval_limit,
        use_ray=images >= EVALUATE_RAY_FROM,  # a few images: one process beats starting an actor pool
        address=context.config.address,
        num_cpus=context.config.num_cpus,
        actors=_evaluate_actors(),
        device="cuda" if context.config.gpu else "cpu",
        tracking_uri=context.tracking_uri,
        experiment=context.config.experiment,
    )


def _evaluate_execute(context: StageContext, stage_config, name: str, digest: str) -> StageRecord:
    from colorization.stages import evaluate as evaluate_stage

    result = evaluate_stage.run(stage_config)
    versions = {family: context.records[f"train-{family}"].facts.get("registered") for family in FAMILIES}
    if result.mlflow_run_id:  # the registered versions it scored (the files are their artifacts, byte for byte)
        from colorization.stages.pipeline_registry import tag_run

        tag_run(context.tracking_uri, result.mlflow_run_id,
                {f"model.{family}": info["uri"] for family, info in versions.items() if info})
    table = result.files.get("report.md")
    rows = [
        {key: row.get(key) for key in ("model", "decoder", "temperature", "auc", "rebalanced_auc", "psnr", "images")}
        for row in result.rows
    ]
    return StageRecord(
        name=name,
        digest=digest,
        skipped=False,
        seconds=0.0,
        run_id=result.mlflow_run_id,
        outputs={key: str(path) for key, path in result.files.items()},
        facts={"table": str(table) if table else None, "rows": rows, "recommendations": result.recommendations,
               "versions": versions},
    )


def _evaluate_summary(record: StageRecord) -> str:
    return f"{len(record.facts.get('rows', []))} rows -> {record.facts.get('table')}"


# -- register -----------------------------------------------------------------------------------------------------


def _register_build(context: StageContext):
    """Promotes the evaluated versions: the champion alias moves to them (training registered them as candidates)."""
    if not context.config.register:
        return None
    versions = context.records["evaluate"].facts.get("versions", {})
    return {
        "alias": CHAMPION_ALIAS,
        "versions": {family: versions[family] for family in FAMILIES if versions.get(family)},
        "evaluation_run_id": context.records["evaluate"].run_id,
    }


def _register_execute(context: StageContext, stage_config: dict, name: str, digest: str) -> StageRecord:
    from colorization.stages.pipeline_registry import promote

    promoted = {
        family: promote(context.tracking_uri, info["name"], info["version"], stage_config["alias"],
                        stage_config["evaluation_run_id"])
        for family, info in stage_config["versions"].items()
    }
    return StageRecord(
        name=name,
        digest=digest,
        skipped=False,
        seconds=0.0,
        outputs={f"{family}_model": context.records[f"train-{family}"].outputs["model"] for family in promoted},
        facts={"versions": promoted},
    )


def _register_summary(record: StageRecord) -> str:
    return ", ".join(f"{info['uri']} -> {info['alias_uri']}" for info in record.facts.get("versions", {}).values())


STEPS: dict[str, Step] = {
    "preprocess": Step(_preprocess_build, _preprocess_execute, _preprocess_summary),
    "prior": Step(_prior_build, _prior_execute, _prior_summary),
    "train-zhang": Step(_train_build("zhang"), _train_execute("zhang"), _train_summary),
    "train-larsson": Step(_train_build("larsson"), _train_execute("larsson"), _train_summary),
    "evaluate": Step(_evaluate_build, _evaluate_execute, _evaluate_summary),
    "register": Step(_register_build, _register_execute, _register_summary),
}


# -- what the end of the run prints -------------------------------------------------------------------------------


def serve_command(context: StageContext) -> str:
    """``colorization serve`` for both trained models: registry versions when registered, else the files."""
    register = context.records.get("register")
    models = []
    for family in FAMILIES:
        train = context.records.get(f"train-{family}")
        if train is None:
            continue
        version = (register.facts.get("versions", {}).get(family) if register else None) or {}
        models.append(f"--model {family}={version.get('alias_uri') or train.outputs['model']}")
    prefix = f"MLFLOW_TRACKING_URI={context.tracking_uri} " if register else ""
    return f"{prefix}colorization serve {' '.join(models)}"


def lineage_tags(context: StageContext) -> dict[str, Any]:
    """What travelled between the stages, for the parent run's tags."""
    tags: dict[str, Any] = {}
    if "preprocess" in context.records:
        tags["manifest_digest"] = context.records["preprocess"].facts.get("manifest_digest")
    if "prior" in context.records:
        tags["prior_run_id"] = context.records["prior"].run_id
    register = context.records.get("register")
    for family, info in (register.facts.get("versions", {}) if register else {}).items():
        tags[f"model.{family}"] = info.get("uri")
    return tags


def stage_record_json(record: StageRecord) -> str:
    return json.dumps(asdict(record), default=str)
