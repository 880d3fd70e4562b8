"""The serving stage: the models of a :class:`ServingSettings` on Ray Serve, the API and the page at one URL.

``run`` checks every model source (and, for a local Ray, that the port is free) before Ray starts, then starts or
joins Ray, starts Serve's HTTP proxy on ``host:port`` (127.0.0.1 unless told otherwise) and deploys the
application of ``colorization/serving/app.py``. With ``block`` (the CLI) it serves until Ctrl-C or SIGTERM, then
shuts Serve (and a Ray it started) down; without it (tests, workflows) it returns while the app keeps serving and
the caller shuts it down (:func:`shutdown`).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
from dataclasses import dataclass, replace

from colorization.errors import UserError
from colorization.serving.settings import DEFAULT_HOST, DEFAULT_PORT, ServingSettings

APP_NAME = "colorization"
PROXY_TIMEOUT_MARGIN_S = 30.0  # reading a large body and encoding the result happen outside the app's timeout


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``colorization serve`` needs.

    Attributes:
        settings: models, limits, batching, replicas and resources.
        host: address Serve's HTTP proxy binds (0.0.0.0 exposes it beyond this machine: set an API key).
        port: its port.
        route_prefix: where the app is mounted.
        address: a Ray cluster to join (default: $RAY_ADDRESS, else start Ray on this machine).
        num_cpus: CPUs of a local Ray (default: enough for the deployments, at least this machine's count).
        block: serve until interrupted (the CLI) instead of returning at once.
    """

    settings: ServingSettings
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    route_prefix: str = "/"
    address: str | None = None
    num_cpus: int | None = None
    block: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UserError(f"--port must be 1-65535; got {self.port}")
        if not self.route_prefix.startswith("/"):
            raise UserError(f"route prefix must start with '/'; got {self.route_prefix!r}")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}{self.route_prefix.rstrip('/')}/"


@dataclass(frozen=True)
class ServeResult:
    """Where the app answers.

    Attributes:
        url: the page (the API is under ``url + "v1/"``).
        app_name: the Serve application's name.
        models: the served model names.
        started_ray: whether this run started Ray (then :func:`shutdown` stops it too).
        skipped: never (serving always deploys); kept for the stages' common shape.
    """

    url: str
    app_name: str
    models: tuple[str, ...]
    started_ray: bool = False
    skipped: bool = False


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"cannot serve on {host}:{port}: {error.strerror or error}; choose another --port") from None


def _local_cpus(config: ServeConfig) -> int:
    """Logical CPUs for a local Ray: enough for every replica (the OS shares the real cores between them)."""
    settings = config.settings
    needed = settings.replicas * settings.model_num_cpus * len(settings.models) + settings.ingress_num_cpus
    return config.num_cpus or max(os.cpu_count() or 1, math.ceil(needed))


def run(config: ServeConfig) -> ServeResult:
    """Deploys the app (and blocks while it serves when ``config.block``)."""
    from colorization.serving.model_loading import check_source

    if any(spec.is_registry_uri for spec in config.settings.models):
        from colorization.tracking import resolve_tracking_uri

        # every replica must read the driver's store (a relative ./mlflow.db would differ per worker)
        config = replace(config, settings=replace(
            config.settings, tracking_uri=resolve_tracking_uri(config.settings.tracking_uri)
        ))
    for spec in config.settings.models:
        check_source(spec, config.settings.tracking_uri)
    import ray

    local = not (config.address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())
    if local:
        _check_port_free(config.host, config.port)

    from ray import serve

    from colorization.distributed.runtime import init_ray
    from colorization.serving.app import build_app

    started = init_ray(config.address, _local_cpus(config) if local else None)
    try:
        # the proxy's own timeout is a backstop behind the app's per-request one (which answers JSON 504 first)
        backstop_s = config.settings.request_timeout_s + PROXY_TIMEOUT_MARGIN_S
        serve.start(http_options={"host": config.host, "port": config.port, "request_timeout_s": backstop_s})
        serve.run(build_app(config.settings), name=APP_NAME, route_prefix=config.route_prefix, blocking=False)
    except BaseException:
        shutdown(started)
        raise
    result = ServeResult(
        url=config.url,
        app_name=APP_NAME,
        models=tuple(spec.name for spec in config.settings.models),
        started_ray=started,
    )
    if config.block:
        print(f"serving {', '.join(result.models)} at {result.url} (API: {result.url}docs); Ctrl-C stops", flush=True)
        _wait_for_signal()
        shutdown(started)
    return result


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(3600):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def shutdown(stop_ray: bool) -> None:
    """Removes the Serve app (and stops Ray when this process started it)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        if stop_ray:
            ray.shutdown()
