"""The main job in local single-node mode: scikit-image's colour sample photos -> Lab shards -> ab prior.

    make run                                   # sets up .venv on first use, then runs this
    python workflows/local_pipeline.py --output outputs/local

It starts Ray once on this machine and runs the same stages a cluster runs (``colorization.stages.preprocess``,
then ``colorization.stages.prior``), so the laptop run and the cluster run differ only in where Ray lives and
which folder of images goes in. The prior is logged to MLflow ($MLFLOW_TRACKING_URI, else ./mlflow.db).
Rerunning is safe and quick: stages whose outputs exist for the same inputs and options are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.distributed.runtime import ray_session  # noqa: E402
from colorization.errors import run_reporting  # noqa: E402
from colorization.stages import preprocess, prior  # noqa: E402

# The colour photographs bundled with scikit-image (no download): the project's embedded default input.
SAMPLE_IMAGES = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel",
    "logo", "stereo_motorcycle",
)


def write_sample_images(directory: Path) -> Path:
    """Saves the bundled colour photos as PNG files (the RGBA logo keeps its alpha; the stereo pair gives two)."""
    from PIL import Image
    from skimage import data

    directory.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_IMAGES:
        images = getattr(data, name)()
        images = images if isinstance(images, tuple) else (images,)
        for index, array in enumerate(image for image in images if getattr(image, "ndim", 0) == 3):
            suffix = f"_{index}" if index else ""
            Image.fromarray(array).save(directory / f"{name}{suffix}.png")
    return directory


def run(args: argparse.Namespace) -> int:
    """Both stages in one local Ray; prints where the outputs are."""
    images = write_sample_images(args.output / "images")
    shards, prior_dir = args.output / "shards", args.output / "prior"
    with ray_session(None, args.num_cpus):  # one Ray for both stages
        shards_result = preprocess.run(
            preprocess.PreprocessStageConfig(input_root=str(images), output_dir=str(shards), size=args.size)
        )
        prior_result = prior.run(prior.PriorConfig(shards_dir=str(shards), out=str(prior_dir)))
    print(
        f"local pipeline: shards in {shards_result.output_dir}"
        f"{' (reused)' if shards_result.skipped else ''}, prior and its picture in {prior_dir}"
        f"{' (reused)' if prior_result.skipped else ''}; MLflow run {prior_result.run_id}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/local"), help="where everything is written")
    parser.add_argument("--size", type=int, default=256, help="crop side of the shards (default %(default)s)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any failure")
    args = parser.parse_args(argv)
    return run_reporting("local_pipeline", lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
