"""The pipeline in one process (the session's Ray): every stage runs, hands its results on, nests its MLflow run
under the pipeline's, and a rerun skips every stage and says so. Bad arguments fail before any work."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colorization.cli.pipeline import config_from_args, format_report
from colorization.stages.pipeline import STAGES, STATE_FILE, StageRecord, _reusable, config_digest

REPO = Path(__file__).resolve().parents[2]


def parse(argv: list[str]):
    import argparse

    from colorization.cli.pipeline import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def runs_by_id(database: Path) -> dict[str, dict]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT run_uuid, name, status FROM runs").fetchall()
        tags = connection.execute("SELECT run_uuid, key, value FROM tags").fetchall()
    runs = {run_id: {"name": name, "status": status, "tags": {}} for run_id, name, status in rows}
    for run_id, key, value in tags:
        runs[run_id]["tags"][key] = value
    return runs


@pytest.mark.ray
@pytest.mark.slow
def test_pipeline_runs_every_stage_then_skips_them_on_rerun(tmp_path, ray_session, capsys):
    from colorization.stages.pipeline import run

    output, database = tmp_path / "run", tmp_path / "mlflow.db"
    config = config_from_args(parse(["--smoke-test", "--output", str(output), "--tracking-uri", f"sqlite:///{database}"]))
    first = run(config)
    assert [record.name for record in first.stages] == list(STAGES)
    assert not any(record.skipped for record in first.stages)

    # Typed hand-over: the shards and prior the trainings used are the ones the earlier stages made.
    shards = Path(first.stage("preprocess").outputs["shards"])
    manifest = json.loads((shards / "manifest.json").read_text())
    images = sorted((output / "images").iterdir())
    assert manifest["counts"]["written"] == len(images) >= 12
    for family in ("zhang", "larsson"):
        train = first.stage(f"train-{family}")
        saved = json.loads((Path(train.outputs["folder"]) / "train_config.json").read_text())
        assert Path(saved["data"]["shards"]) == shards
        assert Path(saved["loss"]["prior"]) == Path(first.stage("prior").outputs["prior"])
        assert train.facts["prior_run_id"] == first.stage("prior").run_id
        assert train.facts["manifest_digest"] == first.stage("preprocess").facts["manifest_digest"]
    with np.load(first.stage("prior").outputs["prior"]) as prior:
        assert prior["prior"].sum() == pytest.approx(1.0)

    # The evaluation table holds both trained models and the grey baseline.
    table = Path(first.stage("evaluate").facts["table"]).read_text()
    for model in ("grey", "zhang", "larsson"):
        assert f"| {model}" in table.lower() or f"|{model}" in table.lower(), table
    assert Path(first.stage("evaluate").outputs["samples.png"]).is_file()

    # MLflow: one parent, every stage's run nested under it, both models registered with the alias.
    runs = runs_by_id(database)
    parent = runs[first.mlflow_run_id]
    assert parent["name"] == "pipeline" and parent["status"] == "FINISHED"
    children = {run["tags"]["colorization.pipeline_stage"]: run for run in runs.values()
                if run["tags"].get("mlflow.parentRunId") == first.mlflow_run_id}
    assert set(children) == {"prior", "train-zhang", "train-larsson", "evaluate"}
    versions = first.stage("register").facts["versions"]
    assert {info["alias"] for info in versions.values()} == {"champion"}
    with sqlite3.connect(database) as connection:
        champions = connection.execute(
            "SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'"
        ).fetchall()
    assert {name: str(version) for name, version in champions} == {
        info["name"]: info["version"] for info in versions.values()
    }
    assert "--model zhang=models:/zhang-eccv16@champion" in first.serve_command
    assert "--model larsson=models:/larsson-hypercolumn@champion" in first.serve_command

    # Rerun: every stage is skipped (and says so), under the same parent run; the report says where things are.
    capsys.readouterr()
    second = run(config)
    assert all(record.skipped for record in second.stages) and second.skipped
    assert second.mlflow_run_id == first.mlflow_run_id
    assert capsys.readouterr().out.count("skipped: its outputs exist for the same config") == len(STAGES)
    report = format_report(second)
    assert "colorization serve --model zhang=" in report and str(output / "models" / "zhang.safetensors") in report
    assert "| larsson |" in report and "| grey baseline |" in report  # the evaluation table, printed
    assert len(runs_by_id(database)) == len(runs)  # nothing logged again
    state = json.loads((output / STATE_FILE).read_text())
    assert [stage["name"] for stage in state["stages"]] == list(STAGES)


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
