"""A small closed-loop HTTP load generator: N requests at a fixed concurrency, latencies and throughput.

Shared by the load suite (tests/serving/test_load.py) and the benchmark (tests/benchmarks/bench_serve.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import requests


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: list[str]
    latencies_s: np.ndarray
    wall_s: float
    batch_sizes: list[int]

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_s

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if len(self.latencies_s) else float("nan")

    def line(self, label: str) -> str:
        return (
            f"{label:<26} c={self.concurrency:<3} n={self.requests:<4} errors={len(self.errors)} "
            f"p50={self.percentile_ms(50):7.1f} ms  p99={self.percentile_ms(99):7.1f} ms  "
            f"{self.throughput:6.2f} req/s  batch mean={np.mean(self.batch_sizes) if self.batch_sizes else 0:.1f} "
            f"max={max(self.batch_sizes, default=0)}"
        )


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests_total: int,
    params: dict[str, str] | None = None,
    content_type: str = "image/jpeg",
    check: Callable[[requests.Response], str | None] | None = None,
    timeout_s: float = 120.0,
) -> LoadResult:
    """POSTs ``body`` ``requests_total`` times from ``concurrency`` threads (each with its own session)."""
    local = threading.local()
    errors: list[str] = []
    latencies: list[float] = []
    batch_sizes: list[int] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        try:
            response = session.post(url, params=params, data=body, headers={"Content-Type": content_type},
                                    timeout=timeout_s)
            problem = None if response.status_code == 200 else f"{response.status_code} {response.text[:120]}"
            if problem is None and check is not None:
                problem = check(response)
        except requests.RequestException as error:
            problem, response = f"{type(error).__name__}: {error}", None
        elapsed = time.perf_counter() - start
        with lock:
            if problem:
                errors.append(problem)
            else:
                latencies.append(elapsed)
                batch_sizes.append(int(response.headers.get("X-Colorization-Batch-Size", "0")))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests_total)))
    return LoadResult(concurrency, requests_total, errors, np.array(latencies), time.perf_counter() - start, batch_sizes)
