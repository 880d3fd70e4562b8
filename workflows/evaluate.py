"""Ray job: evaluate models and the grey baseline with a Ray Data actor pool (the ``colorization evaluate`` stage).

Locally::

    python workflows/evaluate.py --model zhang.safetensors --images ../shared/data/imagenet-sample/dev --out out/eval

On a cluster (shards on storage every node sees; actors take one GPU each when the cluster has GPUs)::

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
        python workflows/evaluate.py --model models:/zhang@champion --shards /mnt/shards/imagenet-256 \\
        --split val --out /mnt/reports/eval --ray

Smoke test (a tiny random Zhang network on scikit-image's sample photos, Ray, < 1 minute on CPU)::

    python workflows/evaluate.py --smoke-test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/evaluate.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.evaluate import add_arguments as add_evaluate_arguments  # noqa: E402
from colorization.cli.evaluate import config_from_args, print_result  # noqa: E402
from workflows.common import run_main  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluate arguments plus --smoke-test."""
    add_evaluate_arguments(parser)
    parser.add_argument("--smoke-test", action="store_true", help="tiny model on bundled sample photos, with Ray")


def _smoke_inputs(folder: Path) -> tuple[Path, Path]:
    """A tiny random Zhang checkpoint and a few of scikit-image's colour photos, written into ``folder``."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from colorization.models.checkpoint import save_checkpoint
    from colorization.models.registry import create_model

    images = folder / "images"
    images.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(np.asarray(getattr(data, name)())).save(images / f"{name}.png")
    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=0.125, input_size=64)
    return save_checkpoint(model, folder / "zhang-tiny.safetensors"), images


def run(args: argparse.Namespace) -> int:
    if args.smoke_test:
        folder = Path(tempfile.mkdtemp(prefix="evaluate-smoke-"))
        checkpoint, images = _smoke_inputs(folder)
        args.models, args.images, args.shards = [str(checkpoint)], images, None
        args.out = args.out or folder / "report"
        args.use_ray = True if args.use_ray is None else args.use_ray
        args.num_cpus = args.num_cpus or 2
        args.size, args.actors = 128, 1
        args.tracking_uri = args.tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
    from colorization.stages.evaluate import run as run_stage

    print_result(run_stage(config_from_args(args)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("evaluate", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
