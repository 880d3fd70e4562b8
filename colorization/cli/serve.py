"""``colorization serve``: the models on Ray Serve, the HTTP API and the web page, on this machine or a cluster.

Models come from this command line only: ``--model NAME=CHECKPOINT`` (a .safetensors file of this project) or
``--model NAME=models:/REGISTERED@ALIAS``; repeat it to serve several side by side (the first is the default).
Binds 127.0.0.1 unless ``--host`` says otherwise; set $COLORIZATION_API_KEY to require a key. Serves until
Ctrl-C. The page is at http://HOST:PORT/ and the API's documentation at http://HOST:PORT/docs (docs/serving.md).
"""

from __future__ import annotations

import argparse

from colorization.serving.settings import DEFAULT_HOST, DEFAULT_PORT, ServingSettings, parse_model_arg

_MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve arguments (shared with ``workflows/serve.py``)."""
    defaults = ServingSettings(models=(parse_model_arg("default=unused"),))
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=SOURCE",
        help="a model to serve: NAME=CHECKPOINT.safetensors or NAME=models:/NAME@ALIAS (repeatable)",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument("--replicas", type=int, default=defaults.replicas, help="replicas per model (default %(default)s)")
    parser.add_argument(
        "--max-batch-size", type=int, default=defaults.max_batch_size,
        help="images per forward pass; 1 turns batching off (default %(default)s)",
    )
    parser.add_argument(
        "--batch-wait-ms", type=float, default=defaults.batch_wait_timeout_s * 1000,
        help="how long a batch waits to fill (default %(default)g ms)",
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=defaults.max_body_bytes / _MIB, help="request body limit (default %(default)g MiB)"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=defaults.max_pixels, help="image pixel limit (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=defaults.request_timeout_s, help="per-request timeout (default %(default)g s)"
    )
    parser.add_argument(
        "--cache-mb", type=float, default=defaults.cache_bytes / _MIB,
        help="per replica, memory for re-rendering recent uploads (default %(default)g MiB)",
    )
    parser.add_argument(
        "--model-cpus", type=float, default=defaults.model_num_cpus, help="CPUs per model replica (default %(default)g)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads per model replica (default: --model-cpus)")
    parser.add_argument("--device", default=defaults.device, help="torch device of the models, e.g. cuda (default cpu)")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow store of models:/ sources (default $MLFLOW_TRACKING_URI or sqlite)"
    )
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else local)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: enough)")


def settings_from_args(args: argparse.Namespace) -> ServingSettings:
    """The :class:`ServingSettings` of parsed arguments (UserError on a bad value)."""
    return ServingSettings(
        models=tuple(parse_model_arg(text) for text in args.model),
        max_body_bytes=int(args.max_body_mb * _MIB),
        max_pixels=args.max_pixels,
        request_timeout_s=args.timeout,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_ms / 1000,
        cache_bytes=int(args.cache_mb * _MIB),
        replicas=args.replicas,
        model_num_cpus=args.model_cpus,
        torch_threads=args.threads,
        device=args.device,
        tracking_uri=args.tracking_uri,
    )


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization serve``; ``func`` is :func:`run`."""
    parser = subparsers.add_parser(name, help=help_text, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from colorization.stages.serve import ServeConfig
    from colorization.stages.serve import run as serve

    config = ServeConfig(
        settings=settings_from_args(args), host=args.host, port=args.port, address=args.address, num_cpus=args.num_cpus
    )
    serve(config)
    return 0
