"""``colorization train --recipe NAME|FILE --shards DIR [--prior PRIOR] --out DIR [KEY=VALUE ...]``.

Builds a :class:`~colorization.training.config.TrainConfig` from a recipe (``--list-recipes``) and overrides, and
runs the train stage (``colorization/stages/train.py``): with Ray Train when ``scaling.num_workers >= 1``
(``--num-workers N``), in this process without Ray with ``--no-ray``. ``workflows/train.py`` takes the same
arguments (it is the ``ray job submit`` entry point). Re-running the same command with the same ``--out`` resumes.
"""

from __future__ import annotations

import argparse

from colorization.errors import UserError

_DESCRIPTION = (
    "Train a colorization network from Lab shards (recipes: zhang-imagenet, larsson-imagenet, zhang-local, "
    "larsson-local, zhang-smoke, larsson-smoke; or a YAML file). KEY=VALUE overrides set any config field, "
    "e.g. optimizer.lr=1e-4 schedule.max_steps=2000 model.overrides.heads=[lab_joint]."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train arguments (shared with ``workflows/train.py``)."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted keys)")
    parser.add_argument("--recipe", help="a shipped recipe name or a YAML file")
    parser.add_argument("--shards", help="output folder of `colorization preprocess` (sets data.shards)")
    parser.add_argument("--prior", help="`colorization prior` output, .npz or folder (sets loss.prior)")
    parser.add_argument("--out", help="output folder: checkpoints, final model, summary (reused to resume)")
    parser.add_argument("--num-workers", type=int, help="Ray Train workers (sets scaling.num_workers)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker (sets scaling.use_gpu=true)")
    parser.add_argument("--no-ray", action="store_true", help="train in this process without Ray (num_workers=0)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (sets schedule.max_steps)")
    parser.add_argument("--device", help="device of the --no-ray path (default: cuda with --gpu, else cpu)")
    parser.add_argument("--max-failures", type=int, default=0, help="Ray Train worker failures to survive")
    parser.add_argument("--experiment", default="colorization-train", help="MLflow experiment (Ray path)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite)")
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--threads", type=int, help="torch CPU threads of the --no-ray path (default: torch's)")
    parser.add_argument("--list-recipes", action="store_true", help="print the shipped recipes and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")


def stage_config_from_args(args: argparse.Namespace):
    """The :class:`TrainStageConfig` of parsed arguments (UserError on anything wrong)."""
    from colorization.stages.train import TrainStageConfig
    from colorization.training.recipes import load_recipe

    if not args.recipe:
        raise UserError("--recipe NAME|FILE is required (see --list-recipes)")
    overrides = list(args.overrides)
    if args.shards is not None:
        overrides.append(f"data.shards={_quoted(args.shards)}")
    if args.prior is not None:
        overrides.append(f"loss.prior={_quoted(args.prior)}")
    if args.num_workers is not None:
        if args.num_workers < 0:
            raise UserError(f"--num-workers must be >= 0; got {args.num_workers}")
        overrides.append(f"scaling.num_workers={args.num_workers}")
    if args.no_ray:
        if args.num_workers:
            raise UserError("--no-ray trains in this process: it cannot be combined with --num-workers >= 1")
        overrides.append("scaling.num_workers=0")
    if args.gpu:
        overrides.append("scaling.use_gpu=true")
    if args.max_steps is not None:
        overrides.append(f"schedule.max_steps={args.max_steps}")
    train = load_recipe(args.recipe, overrides)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1; got {args.threads}")
    if args.max_failures < 0:
        raise UserError(f"--max-failures must be >= 0; got {args.max_failures}")
    return TrainStageConfig(
        train=train,
        out=args.out or "",
        device=args.device,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        max_failures=args.max_failures,
        address=args.address,
        num_cpus=args.num_cpus,
        threads=args.threads,
    )


def _quoted(path: str) -> str:
    import json

    return json.dumps(path)  # a JSON string: paths such as "1e5" or "null" stay text


def run(args: argparse.Namespace) -> int:
    """Runs the train stage for parsed arguments and prints its summary; returns the exit status."""
    if args.list_recipes:
        from colorization.training.recipes import available_recipes

        print("\n".join(available_recipes()))
        return 0
    config = stage_config_from_args(args)
    if args.print_config:
        print(config.train.to_json())
        return 0
    if not args.out:
        raise UserError("--out DIR is required (checkpoints and the final model go there)")
    from colorization.stages.train import run as run_stage

    result = run_stage(config)
    if result.skipped:
        print(f"already trained: {result.out} holds step {result.step}; final model {result.model_path}")
        return 0
    print(f"final model: {result.model_path} (step {result.step})")
    validation = result.validation
    if "val_rebalanced_auc" in validation:
        print(
            f"validation: AuC {validation['val_auc']:.2f} (grey {validation.get('val_grey_auc', float('nan')):.2f}), "
            f"rebalanced AuC {validation['val_rebalanced_auc']:.2f} "
            f"(grey {validation.get('val_grey_rebalanced_auc', float('nan')):.2f}), "
            f"PSNR {validation['val_psnr']:.2f} dB, colourfulness {validation['val_colourfulness']:.1f}"
        )
    if result.mlflow_run_id:
        print(f"MLflow run {result.mlflow_run_id}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization train``."""
    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
