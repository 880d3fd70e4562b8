"""Starting or joining Ray for a stage: the one place the library calls ``ray.init``.

A stage run from the CLI on a laptop starts a local Ray; inside ``ray job submit`` it joins the cluster through
``RAY_ADDRESS``; inside a parent (the pipeline, a test) Ray is already up and is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Starts or joins Ray unless it is already up (tests, a parent workflow); True when this call started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)  # a cluster decides its own CPUs
    else:
        # "local": always a new single-node Ray, even when a `ray start` cluster runs on this machine
        # (without it ray.init would join that cluster and refuse num_cpus).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress lines come from the job itself
    return True


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[bool]:
    """``with ray_session(...):`` Ray is up inside; shut down afterwards only if this call started it."""
    started = init_ray(address, num_cpus)
    try:
        yield started
    finally:
        if started:
            import ray

            ray.shutdown()
