"""Multi-node for real: a simulated 2-node Ray cluster, one DDP worker per node (STRICT_SPREAD), gloo, both models.

Runs ``tests/distributed/two_node_train.py`` in a subprocess (the test session already has its own Ray). DDP's
all-reduced gradients must equal the mean of the two halves' gradients computed in one process without DDP, and
after a few steps of the training loop both workers must hold the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_TIMEOUT_S = 420
_GRADIENT_TOLERANCE = 1e-4  # relative to each tensor's largest gradient (float32 sums in another order)


def test_two_nodes_ddp_matches_single_process(mixed_shards: Path, tmp_path: Path):
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("RAY_ADDRESS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "tests.distributed.two_node_train", str(mixed_shards), str(tmp_path / "work")],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert len(set(report["nodes"])) == 2, "the two workers shared a node"
    for recipe, gradients in report["gradients"].items():
        assert gradients["names"], recipe
        assert gradients["max_relative_error"] < _GRADIENT_TOLERANCE, (recipe, gradients)
    first, second = report["checksums"]
    for recipe in first:
        assert first[recipe]["steps"] == second[recipe]["steps"] == 3
        assert first[recipe]["weights"] == pytest.approx(second[recipe]["weights"], rel=1e-9, abs=1e-9), recipe
