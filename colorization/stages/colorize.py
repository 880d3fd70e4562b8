"""The batch colorization stage: files and folders in, a mirrored tree of PNGs with provenance and a manifest out.

``run(ColorizeConfig(...))`` checks the model, the options and the output folder BEFORE any work (the output may
not be, lie inside or contain an input; one :class:`UserError` line otherwise), plans one output per input image
and colorizes in one process or with a Ray Data actor pool (``use_ray``; automatic from :data:`RAY_THRESHOLD`
images). Rules users can rely on:

* the output tree mirrors each input folder; a file given directly lands at ``OUT/<name>.png``; when several
  inputs hold the same relative path, those outputs go under ``OUT/<input folder name>/``; names that would still
  meet (``a.jpg`` and ``a.jpeg``) keep their extension (``a.jpg.png``, ``a.jpeg.png``): ``safe_outputs.output_names``;
* originals are never modified; every output is written atomically with its provenance (``io.provenance``);
* one unreadable input or unwritable output is a ``failed`` entry with the reason, never an abort;
* ``OUT/colorize-manifest.json`` lists every input: written + skipped (done by an earlier run) + failed;
* resumable: an existing output whose provenance matches the source (size, mtime), the model digest and the
  decoding is skipped on a rerun.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from colorization.errors import UserError
from colorization.families import DecodeOptions
from colorization.io.provenance import read_provenance
from colorization.io.safe_outputs import check_output_dir, output_names, write_json_atomic

RAY_THRESHOLD = 200  # images from which a Ray actor pool pays for its start-up on a 2-core machine
MANIFEST_NAME = "colorize-manifest.json"
OUTPUT_SUFFIX = ".png"


@dataclass(frozen=True)
class ColorizeConfig:
    """Everything batch colorization needs.

    Attributes:
        inputs: image files or folders (searched recursively).
        out: output folder.
        model: checkpoint path or ``models:/NAME@ALIAS``.
        options: decoder choice (family defaults filled in).
        device: torch device ("auto", "cpu", "cuda" ...).
        batch_size: images per batch.
        use_ray: True/False, or None for Ray from RAY_THRESHOLD images.
        address: Ray cluster address (None: $RAY_ADDRESS or a local Ray).
        num_cpus: CPUs of a local Ray.
        actors: size of the actor pool.
    """

    inputs: tuple[Path, ...]
    out: Path
    model: str
    options: DecodeOptions = DecodeOptions()
    device: str = "cpu"
    batch_size: int = 8
    use_ray: bool | None = None
    address: str | None = None
    num_cpus: int | None = None
    actors: int = 2

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UserError("give at least one input file or folder")
        if self.batch_size < 1 or self.actors < 1:
            raise UserError(f"--batch-size and --actors must be positive; got {self.batch_size}, {self.actors}")


@dataclass(frozen=True)
class ColorizeResult:
    """What a batch colorization did."""

    out: Path
    manifest: Path
    written: list[tuple[str, str]]
    skipped_done: list[tuple[str, str]]
    failed: list[tuple[str, str]]
    seconds: float
    used_ray: bool
    skipped: bool = False  # every output already existed for the same model and options
    record: dict = field(default_factory=dict)


def plan_outputs(inputs: tuple[Path, ...], out: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(source, destination) for every image under the inputs, and (input, reason) for inputs that do not exist.

    See the module docstring for the naming rule; deterministic for a given set of inputs.
    """
    from colorization.io.images import list_image_files

    entries: list[tuple[int, Path, str]] = []  # (input index, source, relative path)
    missing: list[tuple[str, str]] = []
    for index, given in enumerate(inputs):
        if not given.exists():
            missing.append((str(given), "no such file or folder"))
        elif given.is_dir():
            entries += [(index, path, path.relative_to(given).as_posix()) for path in list_image_files(given)]
        else:
            entries.append((index, given, given.name))
    def stem(relative: str) -> str:  # outputs meet when the paths meet without extension (any case)
        return str(Path(relative).with_suffix("")).casefold()

    owners: dict[str, set[int]] = {}
    for index, _, relative in entries:
        owners.setdefault(stem(relative), set()).add(index)
    prefixes = _input_prefixes(inputs)
    keyed = [
        (source, f"{prefixes[index]}/{relative}" if len(owners[stem(relative)]) > 1 else relative)
        for index, source, relative in entries
    ]
    names = output_names([key for _, key in keyed], OUTPUT_SUFFIX)
    return [(str(source), str(out / names[key])) for source, key in keyed], missing


def _input_prefixes(inputs: tuple[Path, ...]) -> list[str]:
    """A distinct folder name per input (its own name, numbered when two inputs share one)."""
    prefixes: list[str] = []
    for given in inputs:
        base = (given.name if given.is_dir() else given.parent.name) or "input"
        name, number = base, 1
        while name in prefixes:
            number += 1
            name = f"{base}-{number}"
        prefixes.append(name)
    return prefixes


def _is_done(destination: str, source: str, record: dict) -> bool:
    from colorization.distributed.colorize_batch import source_stamp

    found = read_provenance(destination)
    if found is None:
        return False
    wanted = {**record, **source_stamp(source)}
    return all(found.get(key) == value for key, value in wanted.items())


def run(config: ColorizeConfig) -> ColorizeResult:
    """Validates, plans, colorizes and writes the manifest; see the module docstring."""
    from colorization.devices import resolve_device
    from colorization.families import adapter_for
    from colorization.inference import load_model, file_digest
    from colorization.model_source import is_registry_uri

    start = time.perf_counter()
    device = str(resolve_device(config.device))
    model_inputs = [] if is_registry_uri(config.model) else [Path(config.model)]
    out = check_output_dir(config.out, inputs=[*config.inputs, *model_inputs], what="--out")
    if not any(Path(given).exists() for given in config.inputs):  # nothing to do: say so before loading a model
        raise UserError(f"no such file or folder: {', '.join(str(given) for given in config.inputs)}")
    model = load_model(config.model, device="cpu")
    try:
        options = adapter_for(model).resolve_options(model, config.options)
    except ValueError as error:
        raise UserError(str(error)) from None
    record = {
        "colorized": True,
        "model": config.model if is_registry_uri(config.model) else Path(config.model).name,
        "model_sha256": None if is_registry_uri(config.model) else file_digest(config.model),
        "family": adapter_for(model).family,
        **{key: value for key, value in asdict(options).items() if value is not None},
    }
    jobs, failed = plan_outputs(config.inputs, out)
    todo = [(source, destination) for source, destination in jobs if not _is_done(destination, source, record)]
    pending = set(todo)
    done_before = [job for job in jobs if job not in pending]
    use_ray = config.use_ray if config.use_ray is not None else len(todo) >= RAY_THRESHOLD
    worker_kwargs = {"model": config.model, "options": options, "record": record, "device": device,
                     "batch_size": config.batch_size}
    statuses = []
    from colorization.distributed import colorize_batch

    if todo:
        if use_ray:
            from colorization.distributed.runtime import ray_session

            with ray_session(config.address, config.num_cpus):
                statuses = colorize_batch.colorize_with_ray(worker_kwargs, todo, batch_size=config.batch_size,
                                                           actors=config.actors)
        else:
            worker = colorize_batch.ColorizeWorker(**worker_kwargs)
            statuses = colorize_batch.colorize_locally(worker, todo, config.batch_size)
    written = sorted((s, d) for s, d, status, _ in statuses if status == colorize_batch.WRITTEN)
    failed += sorted((s, reason) for s, _, status, reason in statuses if status != colorize_batch.WRITTEN)
    manifest = out / MANIFEST_NAME
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(manifest, {
        "model": record,
        "inputs": [str(path) for path in config.inputs],
        "counts": {"listed": len(written) + len(done_before) + len(failed), "written": len(written),
                   "skipped_done": len(done_before), "failed": len(failed)},
        "written": [{"source": s, "output": d} for s, d in written],
        "skipped_done": [{"source": s, "output": d} for s, d in sorted(done_before)],
        "failed": [{"source": s, "reason": r} for s, r in failed],
        "seconds": seconds,
        "ray": use_ray,
    })
    return ColorizeResult(out=out, manifest=manifest, written=written, skipped_done=sorted(done_before),
                          failed=failed, seconds=seconds, used_ray=use_ray,
                          skipped=bool(jobs) and not todo and not failed, record=record)
