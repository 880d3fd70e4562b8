"""Ray job: the empirical ab prior and class-rebalancing weights (Zhang et al. Sec. 2.2) from Lab shards, in MLflow.

Counts every pixel of the training split's colourful images into its nearest ab bin with Ray Data (exact integer
sums), then smooths (sigma) and mixes with the uniform distribution (lambda) with the core's functions. Writes
PRIOR.npz, PRIOR.json and PRIOR.png (log-probability over the ab plane; or PRIOR/ab_prior.* when --out is a
directory) and logs them, with the parameters and counts, as one MLflow run (tracking URI: --tracking-uri, else
$MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).

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
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/prior.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.color.constants import (  # noqa: E402
    AB_GRID_STEP,
    COLOURLESS_AB_THRESHOLD,
    PRIOR_UNIFORM_MIX,
    SOFT_ENCODE_SIGMA,
)
from colorization.io.manifest import MANIFEST_NAME, OutputConflictError, read_manifest, shard_files  # noqa: E402
from workflows.common import WorkflowError, init_ray, run_main  # noqa: E402

EXPERIMENT = "colorization-prior"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The prior arguments (shared with ``colorization prior``)."""
    parser.add_argument("shards", nargs="?", help="output directory of `preprocess` (holds manifest.json)")
    parser.add_argument("--out", help="PRIOR.npz (+ .json, .png beside it), or a directory (ab_prior.npz, .json, .png)")
    parser.add_argument("--bins", default="default", help="'default' (in-gamut grid of 10) or a .npy of (Q, 2) centres")
    parser.add_argument("--split", default="train", help="split to count (default %(default)s)")
    parser.add_argument("--sigma", type=float, default=SOFT_ENCODE_SIGMA, help="smoothing sigma (default %(default)s)")
    parser.add_argument(
        "--lambda", dest="uniform_mix", type=float, default=PRIOR_UNIFORM_MIX, help="uniform mix (default %(default)s)"
    )
    parser.add_argument("--method", choices=("lattice", "per-pixel"), default="lattice", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment (default %(default)s)")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite)"
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else start Ray locally)"
    )
    parser.add_argument("--smoke-test", action="store_true", help="run on tiny shards of bundled sample images")


def _load_bins(spec: str):
    import torch

    from colorization.color.ab_bins import default_ab_bins
    from colorization.io.ab_bins_file import load_ab_bins

    if spec == "default":
        return default_ab_bins(AB_GRID_STEP, dtype=torch.float32), f"default (in-gamut grid {AB_GRID_STEP:g})"
    try:
        return load_ab_bins(spec), str(Path(spec).resolve())
    except (OSError, ValueError) as error:
        raise WorkflowError(f"--bins {spec}: {error}") from None


def _split_shards(shards_dir: Path, split: str) -> tuple[dict, list[Path]]:
    """The manifest and the shard files of ``split``; WorkflowError when there are none."""
    try:
        manifest = read_manifest(shards_dir)
        files = shard_files(shards_dir, split, manifest)
    except FileNotFoundError:
        raise WorkflowError(f"{shards_dir} has no {MANIFEST_NAME}: run `colorization preprocess` first") from None
    except OutputConflictError as error:
        raise WorkflowError(str(error)) from None
    if not files:
        raise WorkflowError(f"{shards_dir} has no shards in split {split!r}")
    return manifest, files


def compute_prior(args: argparse.Namespace, shards_dir: Path, out: Path) -> dict:
    """Counts, smooths, writes and logs; returns a summary (paths, run id, figures)."""
    import mlflow
    import torch

    from colorization.color.ab_prior import rebalance_weights, smooth_ab_prior
    from colorization.distributed.data import ab_prior_counts
    from colorization.io.prior_file import save_ab_prior
    from colorization.tracking import configure_tracking

    manifest, files = _split_shards(shards_dir, args.split)
    bins, bins_source = _load_bins(args.bins)

    totals = ab_prior_counts(files, bins, method=args.method)
    if totals["pixels"] == 0:
        raise WorkflowError(f"split {args.split!r} of {shards_dir} has no colourful images to count")
    counts = torch.from_numpy(totals["counts"])
    prior = smooth_ab_prior(counts, bins, sigma=args.sigma)
    weights = rebalance_weights(prior, uniform_mix=args.uniform_mix)
    pixels_per_s = totals["pixels"] / max(totals["seconds"], 1e-9)
    metadata = {
        "shards": str(shards_dir.resolve()),
        "split": args.split,
        "shard_files": len(files),
        "bins_source": bins_source,
        "sigma": args.sigma,
        "uniform_mix": args.uniform_mix,
        "colourless_threshold": COLOURLESS_AB_THRESHOLD,
        "count_method": args.method,
        "images": totals["images"],
        "colourless_skipped": totals["colourless"],
        "pixels": totals["pixels"],
        "preprocess_config": manifest["config"],
    }
    paths = save_ab_prior(
        out, counts=totals["counts"], prior=prior.numpy(), weights=weights.numpy(), bins=bins.numpy(), metadata=metadata
    )

    tracking_uri, _ = configure_tracking(args.experiment, args.tracking_uri)
    with mlflow.start_run(run_name=f"ab-prior-{args.split}") as run:
        mlflow.set_tag("colorization.stage", "prior")
        mlflow.log_params(
            {
                "shards": metadata["shards"],
                "split": args.split,
                "shard_files": len(files),
                "bins_source": bins_source,
                "num_bins": len(bins),
                "sigma": args.sigma,
                "lambda": args.uniform_mix,
                "colourless_threshold": COLOURLESS_AB_THRESHOLD,
                "count_method": args.method,
                "crop_size": manifest["config"]["size"],
            }
        )
        mlflow.log_metrics(
            {
                "images": totals["images"],
                "colourless_skipped": totals["colourless"],
                "pixels": totals["pixels"],
                "count_seconds": totals["seconds"],
                "count_task_seconds": totals["task_seconds"],
                "pixels_per_second": pixels_per_s,
                "bins_seen": int((totals["counts"] > 0).sum()),
                "max_weight": float(weights.max()),
            }
        )
        for path in paths:
            mlflow.log_artifact(str(path), artifact_path="prior")
        mlflow.log_artifact(str(shards_dir / MANIFEST_NAME), artifact_path="shards")
        run_id = run.info.run_id
    return {
        "paths": paths,
        "run_id": run_id,
        "tracking_uri": tracking_uri,
        "totals": totals,
        "pixels_per_s": pixels_per_s,
        "num_bins": len(bins),
    }


def run(args: argparse.Namespace) -> int:
    """Runs the job for parsed arguments; raises WorkflowError for user-facing problems."""
    temporary = None
    if not args.smoke_test:  # bad arguments fail before Ray starts (seconds)
        if not args.shards or not args.out:
            raise WorkflowError("SHARDS and --out PRIOR are required (or use --smoke-test)")
        _split_shards(Path(args.shards), args.split)
        _load_bins(args.bins)
    started_ray = init_ray(args.address, args.num_cpus)
    try:
        if args.smoke_test:
            from colorization.distributed.data import preprocess_to_shards
            from colorization.io.manifest import PreprocessConfig
            from workflows.preprocess import SMOKE_SIZE, write_smoke_images

            temporary = Path(tempfile.mkdtemp(prefix="colorization-prior-smoke-"))
            images = write_smoke_images(temporary / "images")
            shards_dir = temporary / "shards"
            preprocess_to_shards(
                PreprocessConfig(input_root=str(images), size=SMOKE_SIZE, val_fraction=0.2, target_shard_mb=0.05),
                shards_dir,
            )
            out = Path(args.out) if args.out else temporary / "prior"
            if not args.tracking_uri:
                args.tracking_uri = f"sqlite:///{temporary / 'mlflow.db'}"
        else:
            shards_dir, out = Path(args.shards), Path(args.out)
        start = time.perf_counter()
        summary = compute_prior(args, shards_dir, out)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    totals = summary["totals"]
    print(
        f"prior: {totals['images']} images ({totals['colourless']} colourless skipped), {totals['pixels']:,} pixels "
        f"into {summary['num_bins']} bins: counted in {totals['seconds']:.1f} s = "
        f"{summary['pixels_per_s']:,.0f} pixels/s "
        f"({totals['blocks']} blocks; {time.perf_counter() - start:.1f} s with writing and MLflow logging)"
    )
    removed = " (smoke test: temporary, removed)" if temporary and not args.out else ""
    print("  wrote " + ", ".join(str(path) for path in summary["paths"]) + removed)
    print(f"  MLflow run {summary['run_id']} at {summary['tracking_uri']}{removed}")
    if removed:
        shutil.rmtree(temporary, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("prior", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
