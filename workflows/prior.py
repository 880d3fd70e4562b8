"""Ray job: the empirical ab prior and class-rebalancing weights (Zhang et al. Sec. 2.2) from Lab shards, in MLflow.

A thin entry point for :mod:`colorization.stages.prior` (the CLI's ``colorization prior`` calls the same stage):
counts every pixel of the training split's colourful images into its nearest ab bin with Ray Data (exact integer
sums), then smooths (sigma) and mixes with the uniform distribution (lambda). Writes PRIOR.npz, PRIOR.json and
PRIOR.png (or PRIOR/ab_prior.* when --out is a directory) and logs them as one MLflow run (tracking URI:
--tracking-uri, else $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).

Locally::

    python workflows/prior.py out/dev-256 --out out/prior/dev.npz
    colorization prior out/dev-256 --out out/prior/dev.npz --bins ../shared/data/zhang-eccv16/pts_in_hull.npy

On a cluster::

    ray job submit --address http://HEAD:8265 --working-dir . \\
        --runtime-env-json '{"env_vars": {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}}' -- \\
        python workflows/prior.py /mnt/shards/imagenet-256 --out /mnt/priors/imagenet-256.npz

Smoke test (builds tiny shards from scikit-image's photos; everything in a temp directory, < 1 minute)::

    python workflows/prior.py --smoke-test
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/prior.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.prior import add_arguments as add_stage_arguments  # noqa: E402
from colorization.cli.prior import config_from_args  # noqa: E402
from colorization.distributed.runtime import ray_session  # noqa: E402
from colorization.errors import UserError  # noqa: E402
from colorization.stages import preprocess as preprocess_stage  # noqa: E402
from colorization.stages.prior import run as run_stage  # noqa: E402
from workflows.common import run_main  # noqa: E402

EXPERIMENT = "colorization-prior"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's arguments plus ``--smoke-test``."""
    add_stage_arguments(parser, optional_paths=True)
    parser.add_argument("--smoke-test", action="store_true", help="run on tiny shards of bundled sample images")


def run(args: argparse.Namespace) -> int:
    """Runs the stage for parsed arguments (on tiny temporary shards for ``--smoke-test``)."""
    if not args.smoke_test:
        if not args.shards or not args.out:
            raise UserError("SHARDS and --out PRIOR are required (or use --smoke-test)")
        run_stage(config_from_args(args))
        return 0
    from workflows.preprocess import SMOKE_SIZE, write_smoke_images

    temporary = Path(tempfile.mkdtemp(prefix="colorization-prior-smoke-"))
    keep = bool(args.out)
    try:
        images = write_smoke_images(temporary / "images")
        args.shards = str(temporary / "shards")
        args.out = args.out or str(temporary / "prior")
        args.tracking_uri = args.tracking_uri or f"sqlite:///{temporary / 'mlflow.db'}"
        with ray_session(args.address, args.num_cpus):  # one Ray for both stages
            preprocess_stage.run(
                preprocess_stage.PreprocessStageConfig(
                    input_root=str(images), output_dir=args.shards, size=SMOKE_SIZE, val_fraction=0.2,
                    target_shard_mb=0.05,
                )  # fmt: skip
            )
            run_stage(config_from_args(args))
    finally:
        if not keep:
            shutil.rmtree(temporary, ignore_errors=True)
    if not keep:
        print("  (smoke test: temporary files removed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("prior", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
