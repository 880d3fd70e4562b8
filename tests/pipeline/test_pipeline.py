"""The pipeline's rules that need no Ray: when a stage may be skipped, and bad arguments failing in one line before
any work. The whole pipeline runs, twice, in tests/pipeline/test_ray_job_submit.py (on a real 2-node cluster)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from colorization.stages.pipeline import StageRecord, _reusable, config_digest


def test_a_stage_is_reused_only_for_the_same_config_and_existing_outputs(tmp_path):
    output = tmp_path / "shards"
    output.mkdir()
    record = StageRecord(name="preprocess", digest=config_digest({"size": 64}), skipped=False, seconds=1.0,
                         outputs={"shards": str(output)})
    previous = json.loads(json.dumps(record.__dict__))
    assert _reusable(previous, config_digest({"size": 64})) == record
    assert _reusable(previous, config_digest({"size": 128})) is None  # another config
    assert config_digest({"size": 64, "num_cpus": 2, "address": "x"}) == config_digest({"size": 64})  # placement
    output.rmdir()
    assert _reusable(previous, config_digest({"size": 64})) is None  # its outputs are gone


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "30"], "--size must be a multiple of 8"),
        (["--zhang-recipe", "no-such-recipe"], "recipe no-such-recipe"),
        (["--set", "optimizer.lr=fast"], "optimizer.lr"),
        (["--input", "/no/such/folder"], "--input /no/such/folder: not found"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_any_work(tmp_path, arguments, message):
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "colorization.cli.main", "pipeline", "--output", str(output), *arguments],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not output.exists() and not (tmp_path / "mlflow.db").exists()  # nothing started, nothing written
