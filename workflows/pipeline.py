"""Ray job: the whole system as one job: images -> shards -> prior -> both networks -> evaluation -> registry.

The main job (``make run``) runs this on this machine: the embedded sample photos, the ``*-local`` recipes, one
local Ray, everything into ``outputs/local`` and MLflow runs into ./mlflow.db::

    python workflows/pipeline.py                          # = make run = colorization pipeline
    python workflows/pipeline.py --smoke-test             # seconds per stage, in a temp folder

On a cluster (docs/cluster.md; inputs and outputs on storage every node sees)::

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
        python workflows/pipeline.py --input /data/imagenet --output /data/runs/imagenet-256 \\
        --zhang-recipe zhang-imagenet --larsson-recipe larsson-imagenet --num-workers 8 --gpu

Rerunning with the same output skips every stage whose outputs exist for the same config (and says so).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/pipeline.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.pipeline import add_arguments, run_from_args  # noqa: E402
from workflows.common import run_main  # noqa: E402

__all__ = ["add_arguments", "main"]


def main(argv: list[str] | None = None) -> int:
    return run_main("pipeline", __doc__.splitlines()[0], add_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
