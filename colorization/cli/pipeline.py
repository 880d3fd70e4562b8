"""``colorization pipeline``: the whole system as one job (``colorization.stages.pipeline``), and its arguments.

The Ray job entry point ``workflows/pipeline.py`` takes the same arguments (it imports them from here: the library
holds them, the CLI never imports ``workflows``). ``make run`` is ``workflows/pipeline.py`` with the defaults (the
embedded sample photos, the ``*-local`` recipes, one process per training, into ``outputs/local``) and 60 steps
per paper.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

__all__ = ["add_arguments", "add_parser", "config_from_args", "run_from_args", "format_report", "SMOKE"]

DEFAULT_OUTPUT = "outputs/local"
_DESCRIPTION = (
    "The whole system as one job: images -> Lab shards -> ab prior -> Zhang et al. and Larsson et al. trained -> "
    "evaluated against the grey baseline -> registered in MLflow; prints where everything is and how to serve it. "
    "Rerunning skips every stage whose outputs exist for the same config."
)
# --smoke-test: seconds per stage on a CPU (tiny shards, the *-smoke recipes, a few evaluation images).
SMOKE = {"size": 48, "zhang_recipe": "zhang-smoke", "larsson_recipe": "larsson-smoke", "eval_limit": 4}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The pipeline's arguments (shared by ``colorization pipeline`` and ``workflows/pipeline.py``)."""
    from colorization.stages.pipeline import DEFAULT_EXPERIMENT, PipelineConfig

    defaults = PipelineConfig(output=DEFAULT_OUTPUT)
    parser.add_argument("--input", default=None, help="image folder or ImageNet tree (default: the embedded photos)")
    parser.add_argument("--output", default=None, help=f"folder for everything (default {DEFAULT_OUTPUT})")
    parser.add_argument("--size", type=int, default=None, help=f"crop side of the shards (default {defaults.size})")
    parser.add_argument(
        "--val-fraction", type=float, default=defaults.val_fraction, help="held-out share (default %(default)s)"
    )
    parser.add_argument("--zhang-recipe", default=None, help=f"recipe name or YAML (default {defaults.zhang_recipe})")
    parser.add_argument(
        "--larsson-recipe", default=None, help=f"recipe name or YAML (default {defaults.larsson_recipe})"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps of both trainings")
    parser.add_argument("--zhang-steps", type=int, default=None, help="optimizer steps of Zhang's (over --max-steps)")
    parser.add_argument(
        "--larsson-steps", type=int, default=None, help="optimizer steps of Larsson's (over --max-steps)"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="training override for both recipes, e.g. --set optimizer.lr=1e-4 (repeatable)",
    )
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers,
                        help="Ray Train workers per training; 0: one process (default %(default)s)")
    parser.add_argument("--gpu", action="store_true", help="train (one GPU per worker) and evaluate on GPUs")
    parser.add_argument("--eval-limit", type=int, default=None, help="score at most N evaluation images")
    parser.add_argument("--no-register", action="store_true", help="do not register the models in MLflow")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--address", default=None, help="Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, "
                        "else sqlite:///./mlflow.db; with --smoke-test, a database in the output folder)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment (default %(default)s)")
    parser.add_argument("--smoke-test", action="store_true",
                        help="tiny sizes and the *-smoke recipes (seconds per stage); temp folder unless --output")


def config_from_args(args: argparse.Namespace):
    """A :class:`PipelineConfig` from parsed arguments (``--smoke-test`` fills what the user left unset)."""
    from colorization.stages.pipeline import PipelineConfig

    defaults = PipelineConfig(output=DEFAULT_OUTPUT)
    smoke = SMOKE if args.smoke_test else {}
    output = args.output or (tempfile.mkdtemp(prefix="colorization-pipeline-smoke-") if args.smoke_test else None)
    output = output or DEFAULT_OUTPUT
    tracking_uri = args.tracking_uri
    if args.smoke_test and tracking_uri is None:
        tracking_uri = f"sqlite:///{(Path(output) / 'mlflow.db').resolve()}"
    return PipelineConfig(
        output=output,
        input=args.input,
        size=args.size or smoke.get("size", defaults.size),
        val_fraction=args.val_fraction,
        zhang_recipe=args.zhang_recipe or smoke.get("zhang_recipe", defaults.zhang_recipe),
        larsson_recipe=args.larsson_recipe or smoke.get("larsson_recipe", defaults.larsson_recipe),
        train_overrides=tuple(args.overrides),
        zhang_steps=args.zhang_steps or args.max_steps,
        larsson_steps=args.larsson_steps or args.max_steps,
        num_workers=args.num_workers,
        gpu=args.gpu,
        eval_limit=args.eval_limit or smoke.get("eval_limit"),
        register=not args.no_register,
        address=args.address,
        num_cpus=args.num_cpus,
        tracking_uri=tracking_uri,
        experiment=args.experiment,
    )


def format_report(result) -> str:
    """The end of the run: each stage's time (or skipped), where everything is, how to look and how to serve."""
    skipped = " (every stage skipped)" if result.skipped else ""
    lines = ["", f"pipeline: finished in {result.seconds:.1f} s{skipped}"]
    for record in result.stages:
        state = "skipped (same config, outputs exist)" if record.skipped else f"{record.seconds:7.1f} s"
        lines.append(f"  {record.name:14s} {state}")
    outputs = {record.name: record.outputs for record in result.stages}
    where = [
        ("images", str(Path(result.output) / "images") if (Path(result.output) / "images").is_dir() else None),
        ("shards", outputs.get("preprocess", {}).get("shards")),
        ("prior + picture", outputs.get("prior", {}).get("picture")),
        ("Zhang model", outputs.get("train-zhang", {}).get("model")),
        ("Larsson model", outputs.get("train-larsson", {}).get("model")),
        ("evaluation table", outputs.get("evaluate", {}).get("report.md")),
        ("colorized samples", outputs.get("evaluate", {}).get("samples.png")),
    ]
    for family in ("zhang", "larsson"):
        samples = Path(outputs.get(f"train-{family}", {}).get("folder", "")) / "samples"
        if samples.is_dir():
            where.append((f"{family} val. grids", str(samples)))
    lines.append("where:")
    lines += [f"  {label:18s} {path}" for label, path in where if path]
    evaluate = next((record for record in result.stages if record.name == "evaluate"), None)
    if evaluate and evaluate.facts.get("table") and Path(evaluate.facts["table"]).is_file():
        table = Path(evaluate.facts["table"]).read_text().splitlines()
        lines += ["evaluation (val split):", *("  " + line for line in table)]
    register = next((record for record in result.stages if record.name == "register"), None)
    for info in (register.facts.get("versions", {}) if register else {}).values():
        lines.append(f"registered: {info['uri']}  ({info['alias_uri']})")
    uri = result.tracking_uri
    ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
    lines += [f"MLflow: parent run {result.mlflow_run_id} at {uri}  ->  {ui}"]
    lines += ["serve both models:", f"  {result.serve_command}"]
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace) -> int:
    """Builds the config, runs the pipeline, prints the report."""
    from colorization.stages.pipeline import run

    result = run(config_from_args(args))
    print(format_report(result), flush=True)
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization pipeline``."""
    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)
    return parser
