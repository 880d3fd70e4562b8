"""The cluster recipe of docs/cluster.md, for real: `ray start --head`, a second `ray start --address` node, and
`ray job submit --working-dir .` of the pipeline's smoke run, as a user types them.

It runs the recipe's two fixes for Ray 2.60: token authentication (``RAY_AUTH_MODE=token`` plus a token, here
``RAY_AUTH_TOKEN`` so that ``~/.ray`` is left alone) for every node and client, and the project's venv first on
the PATH of ``ray start`` (the job's ``python`` is whatever the head's PATH finds first).

Every Ray process of this test runs in its own session (``start_new_session``) with its own temp dir and ports, and
is stopped by signalling that process group: ``ray stop`` would stop every Ray on the machine, other test runs'
included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 480
NODE_START_ATTEMPTS = 3


def free_ports(count: int) -> list[int]:
    """Ports free right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def node_ports() -> list[str]:
    """The per-node ports of `ray start`, all explicit: two nodes and other Rays share this machine."""
    names = ("node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent",
             "metrics-export")
    return [f"--{name}-port={port}" for name, port in zip(names, free_ports(len(names)))]


def start_ray(arguments: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`ray start ... --block` in a new session (its daemons join that process group)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *arguments],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_ray(process: subprocess.Popen) -> None:
    """SIGTERM to the node's process group, SIGKILL to whatever is left after a grace period (as `ray stop`)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            process.poll()
            time.sleep(0.2)


def wait_for(predicate, timeout: float, what: str, processes=(), logs=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process, log in zip(processes, logs):
            if process.poll() is not None:
                pytest.fail(f"{what}: `ray start` exited {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def dashboard_up(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=2)
        return True
    except urllib.error.HTTPError:  # 401 without the token: up and enforcing authentication
        return True
    except OSError:
        return False


def alive_nodes(dashboard_port: int, token: str) -> int:
    """Alive nodes, from the dashboard's REST API (with the token, as every client must send it)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{dashboard_port}/nodes?view=summary", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            summary = json.load(response)["data"]["summary"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for node in summary if node.get("raylet", {}).get("state") == "ALIVE")


def mlflow_runs(database: Path) -> list[tuple[str, str, str]]:
    """(run name, status, parent run id or '') of every run in the job's SQLite tracking store."""
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT r.name, r.status, COALESCE(t.value, '') FROM runs r "
            "LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId'"
        ).fetchall()


def test_ray_job_submit_runs_the_pipeline_on_a_two_node_local_cluster():
    base = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAY_", "MLFLOW_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # fix 2: the job's `python` is the project's
        RAY_AUTH_MODE="token",  # fix 1: the CLI sends the token
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
    )
    gcs_port, dashboard_port, client_port = free_ports(3)
    gcs_address = f"127.0.0.1:{gcs_port}"
    logs = [base / "head.log", base / "worker.log"]
    nodes: list[subprocess.Popen] = []
    output, database = base / "out", base / "mlflow.db"
    try:
        nodes.append(
            start_ray(
                ["--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}", f"--dashboard-port={dashboard_port}",
                 "--dashboard-host=127.0.0.1", f"--ray-client-server-port={client_port}", f"--temp-dir={base}",
                 "--num-cpus=2", *node_ports()],
                env,
                logs[0],
            )
        )
        wait_for(lambda: dashboard_up(dashboard_port), START_TIMEOUT_S, "the head's dashboard", nodes, logs)
        for attempt in range(NODE_START_ATTEMPTS):  # a raylet gets 30 s to register: an overloaded host may miss it
            worker = start_ray(
                [f"--address={gcs_address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                 f"--temp-dir={base / f'n{attempt}'}", *node_ports()],  # its own: nodes on one host share it else
                env,
                logs[1],
            )
            nodes.append(worker)
            deadline = time.monotonic() + START_TIMEOUT_S
            while worker.poll() is None and time.monotonic() < deadline:
                if alive_nodes(dashboard_port, env["RAY_AUTH_TOKEN"]) == 2:
                    break
                time.sleep(0.5)
            if worker.poll() is None:
                break
            stop_ray(nodes.pop())
        wait_for(lambda: alive_nodes(dashboard_port, env["RAY_AUTH_TOKEN"]) == 2, START_TIMEOUT_S, "the second node",
                 nodes, logs)

        # Without RAY_AUTH_MODE=token the job CLI is refused (the first failure of the recipe as Ray documents it).
        refused = subprocess.run(
            [str(RAY), "job", "list", f"--address=http://127.0.0.1:{dashboard_port}"],
            env={key: value for key, value in env.items() if key not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
            | {"HOME": str(base)},  # no ~/.ray/auth_token either
            capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode != 0 and "authentication" in (refused.stdout + refused.stderr).lower()

        def submit(submission_id: str) -> str:
            """`ray job submit` of the smoke run as the docs write it; the job's log once it SUCCEEDED."""
            done = subprocess.run(
                [str(RAY), "job", "submit", f"--address=http://127.0.0.1:{dashboard_port}", "--working-dir", ".",
                 "--runtime-env", "cluster/runtime_env.local.yaml", "--submission-id", submission_id, "--",
                 "python", "workflows/pipeline.py", "--smoke-test", "--debug", "--output", str(output),
                 "--tracking-uri", f"sqlite:///{database}"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
            )
            status = subprocess.run(
                [str(RAY), "job", "status", f"--address=http://127.0.0.1:{dashboard_port}", submission_id],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
            )
            text = done.stdout + done.stderr
            state = status.stdout + status.stderr
            assert "succeeded" in state.lower(), f"{state}\n{text[-6000:]}"
            assert done.returncode == 0, text[-6000:]
            assert "Uploading package" in text or "already exists" in text  # the code travels with the job
            assert "Ray: 2 node(s), 3 CPUs" in text  # the job joined this cluster rather than starting its own
            return text

        first_log = submit("pipeline-smoke")
        assert "| larsson |" in first_log and "colorization serve --model zhang=" in first_log  # the closing report
        summary = json.loads((output / "pipeline.json").read_text())
        stages = {stage["name"]: stage for stage in summary["stages"]}
        assert list(stages) == ["preprocess", "prior", "train-zhang", "train-larsson", "evaluate", "register"]
        assert all(not stage["skipped"] for stage in stages.values())
        for stage in stages.values():
            for path in stage["outputs"].values():
                assert Path(path).exists(), (stage["name"], path)

        # Typed hand-over: the trainings used the shards and prior the earlier stages made, and say so.
        shards, prior = stages["preprocess"], stages["prior"]
        images = sorted((output / "images").iterdir())
        assert json.loads(Path(shards["outputs"]["manifest"]).read_text())["counts"]["written"] == len(images) >= 12
        for family in ("zhang", "larsson"):
            train = stages[f"train-{family}"]
            saved = json.loads((Path(train["outputs"]["folder"]) / "train_config.json").read_text())
            assert Path(saved["data"]["shards"]) == Path(shards["outputs"]["shards"])
            assert Path(saved["loss"]["prior"]) == Path(prior["outputs"]["prior"])
            assert train["facts"]["prior_run_id"] == prior["run_id"]
            assert train["facts"]["manifest_digest"] == shards["facts"]["manifest_digest"]
        table = Path(stages["evaluate"]["facts"]["table"]).read_text()
        for row in ("| grey baseline |", "| zhang |", "| larsson |"):  # both trained models and the baseline
            assert row in table, table

        # MLflow: one finished parent, every stage's run nested under it, the evaluated versions promoted.
        runs = mlflow_runs(database)
        parent_id = summary["mlflow_run_id"]
        assert [status for name, status, parent in runs if name == "pipeline"] == ["FINISHED"], runs
        children = sorted(name for name, status, parent in runs if parent == parent_id and status == "FINISHED")
        assert len(children) == 4, runs  # prior, both trainings, evaluation
        with sqlite3.connect(database) as connection:
            champions = dict(connection.execute(
                "SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'"
            ).fetchall())
        versions = stages["register"]["facts"]["versions"]
        assert {name: str(version) for name, version in champions.items()} == {
            info["name"]: info["version"] for info in versions.values()
        }
        assert "--model zhang=models:/zhang-eccv16@champion" in summary["serve_command"]

        # The same job again: every stage is skipped and says so, under the same parent run; nothing new logged.
        again = submit("pipeline-smoke-rerun")
        assert again.count("skipped: its outputs exist for the same config") == len(stages)
        rerun = json.loads((output / "pipeline.json").read_text())
        assert rerun["mlflow_run_id"] == parent_id and all(stage["skipped"] for stage in rerun["stages"])
        assert len(mlflow_runs(database)) == len(runs)
    finally:
        for node in reversed(nodes):
            stop_ray(node)
        shutil.rmtree(base, ignore_errors=True)
