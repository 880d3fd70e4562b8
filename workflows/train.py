"""Ray job: train a colorization network from Lab shards (Ray Train + MLflow, or in-process without Ray).

The same arguments as ``colorization train`` (see docs/training.md)::

    python workflows/train.py --recipe zhang-local --shards out/dev-256 --prior out/prior --out out/train/zhang-local
    python workflows/train.py --recipe larsson-local --shards out/dev-256 --out out/train/larsson-local --no-ray

On a cluster (shards, prior and output on storage every node sees)::

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
        python workflows/train.py --recipe zhang-imagenet --shards /mnt/shards/imagenet-256 \\
        --prior /mnt/priors/imagenet-256 --out /mnt/train/zhang-imagenet --num-workers 8 --gpu

Smoke test (tiny shards of bundled sample photos in a temp directory, a few steps of each family; < 1 minute)::

    python workflows/train.py --smoke-test
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/train.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.train import add_arguments as add_stage_arguments  # noqa: E402
from colorization.cli.train import run as run_cli  # noqa: E402
from colorization.errors import UserError  # noqa: E402
from workflows.common import run_main  # noqa: E402

SMOKE_RECIPES = ("zhang-smoke", "larsson-smoke")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train arguments plus ``--smoke-test``."""
    add_stage_arguments(parser)
    parser.add_argument("--smoke-test", action="store_true", help="train both smoke recipes on tiny sample shards")


def run(args: argparse.Namespace) -> int:
    """Runs the train stage for parsed arguments (both smoke recipes on temporary shards for ``--smoke-test``)."""
    if not args.smoke_test:
        return run_cli(args)
    from colorization.distributed.runtime import ray_session
    from colorization.stages import preprocess as preprocess_stage
    from workflows.preprocess import SMOKE_SIZE, write_smoke_images

    temporary = Path(tempfile.mkdtemp(prefix="colorization-train-smoke-"))
    try:
        images = write_smoke_images(temporary / "images")
        shards = temporary / "shards"
        with ray_session(args.address, args.num_cpus):
            preprocess_stage.run(
                preprocess_stage.PreprocessStageConfig(
                    input_root=str(images), output_dir=str(shards), size=SMOKE_SIZE, val_fraction=0.2,
                    target_shard_mb=0.05,
                )  # fmt: skip
            )
        for recipe in SMOKE_RECIPES:
            args.recipe, args.shards, args.out = recipe, str(shards), str(temporary / recipe)
            if args.num_workers is None:
                args.no_ray = True
            if run_cli(args):
                raise UserError(f"smoke test: {recipe} failed")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        print("  (smoke test: temporary files removed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("train", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
