"""cluster/: the launcher config satisfies Ray's own schema, the runtime env is one Ray accepts, and every command
the manifests run parses with the workflow it names."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"


def ray_package_dir() -> Path:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def test_aws_launcher_config_matches_rays_schema():
    import jsonschema

    schema = json.loads((ray_package_dir() / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "aws-cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    assert sum(node["max_workers"] for node in node_types.values() if "max_workers" in node) <= config["max_workers"]


def test_runtime_env_is_accepted_by_ray():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    RuntimeEnv(**env)  # raises on unknown or malformed fields
    assert ".venv/" in env["excludes"]


def workflow_commands(entrypoint: str) -> list[list[str]]:
    return [shlex.split(part) for part in entrypoint.split("&&")]


def test_rayjob_entrypoint_parses_with_the_workflows():
    manifest = yaml.safe_load((CLUSTER / "kuberay" / "preprocess-job.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    commands = workflow_commands(manifest["spec"]["entrypoint"])
    assert [Path(command[1]).name for command in commands] == ["preprocess.py", "prior.py"]
    for command in commands:
        assert command[0] == "python" and command[1].startswith("/app/workflows/")
        module = importlib.import_module(f"workflows.{Path(command[1]).stem}")
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        parser.parse_args(command[2:])  # exits (SystemExit) on an argument the workflow does not take
    yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])
