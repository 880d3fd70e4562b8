"""cluster/: every manifest against its schema, and every command it runs against the program that runs it.

* the Ray cluster launcher config against Ray's own schema (``ray/autoscaler/ray-schema.json``);
* Kubernetes objects (storage, the MLflow server) against the Kubernetes JSON schemas (kubernetes-validate,
  strict: unknown fields fail), and the pod templates inside KubeRay's RayJob/RayService the same way;
* KubeRay's own fields against the field names of its ``ray.io/v1`` types (no CRD schema ships offline);
* the runtime envs through Ray's ``RuntimeEnv``; the MLflow server command lines through MLflow's own CLI parser;
* every ``python workflows/...`` entrypoint through the argument parser of the workflow it names.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes these manifests are written for

# Field names of KubeRay's ray.io/v1 types (rayjob_types.go, raycluster_types.go, rayservice_types.go, KubeRay 1.4+).
RAYJOB_SPEC_FIELDS = {
    "entrypoint", "runtimeEnvYAML", "rayClusterSpec", "clusterSelector", "submissionMode", "shutdownAfterJobFinishes",
    "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit", "suspend", "submitterPodTemplate",
    "submitterConfig", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "deletionStrategy",
    "metadata", "jobId", "managedBy", "schedule",
}
RAYSERVICE_SPEC_FIELDS = {
    "serveConfigV2", "rayClusterConfig", "serveService", "upgradeStrategy", "excludeHeadPodFromServeSvc",
    "serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold", "managedBy",
}
RAYCLUSTER_SPEC_FIELDS = {
    "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec", "workerGroupSpecs",
    "headServiceAnnotations", "suspend", "managedBy", "gcsFaultToleranceOptions", "authOptions", "upgradeStrategy",
}
HEAD_GROUP_FIELDS = {"rayStartParams", "template", "serviceType", "headService", "enableIngress", "resources", "labels"}
WORKER_GROUP_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template", "scaleStrategy",
    "numOfHosts", "idleTimeoutSeconds", "suspend", "resources", "labels",
}


def ray_package_dir() -> Path:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def yaml_documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def validate_kubernetes(document: dict) -> None:
    """Strict schema validation (unknown fields fail) of one Kubernetes object."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def validate_pod_template(template: dict, where: str) -> None:
    """A KubeRay group's ``template`` is a core/v1 PodTemplateSpec: validate it as one."""
    validate_kubernetes({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": where}, "template": template})


def kuberay_manifests() -> list[Path]:
    return sorted(path for path in KUBERAY.glob("*.yaml") if yaml_documents(path)[0].get("apiVersion") == "ray.io/v1")


def cluster_spec(manifest: dict) -> dict:
    spec = manifest["spec"]
    return spec["rayClusterSpec"] if manifest["kind"] == "RayJob" else spec["rayClusterConfig"]


def workflow_commands(entrypoint: str) -> list[list[str]]:
    return [shlex.split(part) for part in entrypoint.split("&&")]


def parse_with_workflow(command: list[str]) -> argparse.Namespace:
    """Parses ``python /app/workflows/NAME.py ARGS`` with that workflow's own arguments (SystemExit if it refuses)."""
    assert command[0] == "python" and command[1].startswith("/app/workflows/"), command
    if not (REPO / "workflows" / Path(command[1]).name).is_file():
        pytest.skip(f"{command[1]} is not in this checkout yet")
    module = importlib.import_module(f"workflows.{Path(command[1]).stem}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(command[2:])


def mlflow_server_params(arguments: list[str]) -> dict:
    """Parses ``mlflow server ARGS`` with MLflow's own click command (raises on an unknown option)."""
    from mlflow.cli import server

    return server.make_context("server", list(arguments)).params


# -- Ray ----------------------------------------------------------------------------------------------------------


def test_aws_launcher_config_matches_rays_schema():
    import jsonschema

    schema = json.loads((ray_package_dir() / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "aws-cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    assert sum(node["max_workers"] for node in node_types.values() if "max_workers" in node) <= config["max_workers"]
    assert {node.get("labels", {}).get("role") for node in node_types.values()} >= {"data", "train"}


@pytest.mark.parametrize("name", ["runtime_env.yaml", "runtime_env.local.yaml"])
def test_runtime_env_is_accepted_by_ray(name):
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / name).read_text())
    RuntimeEnv(**env)  # raises on unknown or malformed fields
    assert {".venv/", ".git/", "outputs/", "mlflow.db"} <= set(env["excludes"])


# -- KubeRay ------------------------------------------------------------------------------------------------------


def test_kuberay_manifests_have_kuberay_fields_and_valid_pod_templates():
    manifests = kuberay_manifests()
    assert {path.name for path in manifests} >= {"preprocess-job.yaml", "pipeline-job.yaml", "train-job.yaml"}
    for path in manifests:
        manifest = yaml_documents(path)[0]
        allowed = RAYJOB_SPEC_FIELDS if manifest["kind"] == "RayJob" else RAYSERVICE_SPEC_FIELDS
        assert manifest["kind"] in ("RayJob", "RayService"), path
        assert set(manifest["spec"]) <= allowed, (path.name, set(manifest["spec"]) - allowed)
        spec = cluster_spec(manifest)
        assert set(spec) <= RAYCLUSTER_SPEC_FIELDS, (path.name, set(spec) - RAYCLUSTER_SPEC_FIELDS)
        assert spec["rayVersion"] == importlib.import_module("ray").__version__
        head = spec["headGroupSpec"]
        assert set(head) <= HEAD_GROUP_FIELDS, (path.name, set(head) - HEAD_GROUP_FIELDS)
        validate_pod_template(head["template"], f"{path.stem}-head")
        for group in spec.get("workerGroupSpecs", []):
            assert set(group) <= WORKER_GROUP_FIELDS, (path.name, set(group) - WORKER_GROUP_FIELDS)
            assert group.get("minReplicas", 0) <= group["maxReplicas"], (path.name, group["groupName"])
            validate_pod_template(group["template"], f"{path.stem}-{group['groupName']}")
        for group in [head, *spec.get("workerGroupSpecs", [])]:  # ray start flags: string values only
            assert all(isinstance(value, str) for value in group.get("rayStartParams", {}).values()), path.name
        if "runtimeEnvYAML" in manifest["spec"]:
            from ray.runtime_env import RuntimeEnv

            RuntimeEnv(**yaml.safe_load(manifest["spec"]["runtimeEnvYAML"]))


def test_training_groups_ask_for_gpus_and_carry_the_stage_labels():
    for name in ("pipeline-job.yaml", "train-job.yaml"):
        spec = cluster_spec(yaml_documents(KUBERAY / name)[0])
        groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
        gpu = groups["gpu-train"]
        limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, name
        assert gpu["rayStartParams"]["labels"] == "role=train", name
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", name  # the head only schedules
    pipeline = cluster_spec(yaml_documents(KUBERAY / "pipeline-job.yaml")[0])
    data = {group["groupName"]: group for group in pipeline["workerGroupSpecs"]}["cpu-data"]
    assert data["rayStartParams"]["labels"] == "role=data"


def test_every_pod_mounts_the_shared_claim_of_storage_yaml():
    claim = yaml_documents(KUBERAY / "storage.yaml")[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # many pods write shards and checkpoints
    for path in kuberay_manifests():
        spec = cluster_spec(yaml_documents(path)[0])
        for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
            pod = group["template"]["spec"]
            volumes = pod.get("volumes", [])
            claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}
            if path.name == "rayservice.yaml" and not claims:
                continue  # serving reads checkpoints from MLflow's registry, not from the shared volume
            assert claims == {claim["metadata"]["name"]}, (path.name, claims)
            mounts = {mount["mountPath"] for mount in pod["containers"][0].get("volumeMounts", [])}
            assert "/data" in mounts, path.name


@pytest.mark.parametrize("name", ["preprocess-job.yaml", "pipeline-job.yaml", "train-job.yaml"])
def test_rayjob_entrypoints_parse_with_the_workflows(name):
    manifest = yaml_documents(KUBERAY / name)[0]
    commands = workflow_commands(manifest["spec"]["entrypoint"])
    for command in commands:
        args = parse_with_workflow(command)
        assert not getattr(args, "smoke_test", False)
    if name == "preprocess-job.yaml":
        assert [Path(command[1]).name for command in commands] == ["preprocess.py", "prior.py"]
    if name == "pipeline-job.yaml":
        args = parse_with_workflow(commands[0])
        assert args.gpu and args.input.startswith("/data/") and args.output.startswith("/data/")
        assert args.size == 256 and args.zhang_recipe == "zhang-imagenet" and args.larsson_recipe == "larsson-imagenet"


# -- Kubernetes objects and the MLflow server -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kuberay/storage.yaml", "mlflow/kubernetes.yaml"])
def test_kubernetes_objects_match_the_kubernetes_schema(name):
    documents = yaml_documents(CLUSTER / name)
    assert documents
    for document in documents:
        validate_kubernetes(document)


def test_kubernetes_schema_check_can_fail():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    claim = yaml_documents(KUBERAY / "storage.yaml")[0]
    claim["spec"]["accesModes"] = claim["spec"].pop("accessModes")  # a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(claim)


def test_mlflow_server_on_kubernetes_uses_postgres_and_s3_and_accepts_its_service_name():
    manifests = yaml_documents(CLUSTER / "mlflow/kubernetes.yaml")
    documents = {(doc["kind"], doc["metadata"]["name"]): doc for doc in manifests}
    container = documents[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "server"
    params = mlflow_server_params(container["args"][1:])
    env = {item["name"]: item["value"] for item in container["env"]}
    backend = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), params["backend_store_uri"])
    assert backend.startswith("postgresql+psycopg2://") and "@postgres:5432/" in backend
    assert params["artifacts_destination"].startswith("s3://") and params["serve_artifacts"]
    tracking_host = "mlflow.mlops.svc.cluster.local:5000"  # what the Ray manifests' MLFLOW_TRACKING_URI names
    assert tracking_host in params["allowed_hosts"].split(",")
    uris = {"runtime_env.yaml": yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())["env_vars"]}
    for path in kuberay_manifests():
        runtime_env = yaml.safe_load(yaml_documents(path)[0]["spec"].get("runtimeEnvYAML", "{}"))
        uris[path.name] = runtime_env.get("env_vars", {})
    for name, env_vars in uris.items():
        if "MLFLOW_TRACKING_URI" in env_vars:
            assert env_vars["MLFLOW_TRACKING_URI"] == f"http://{tracking_host}", name
    assert len([name for name, env_vars in uris.items() if "MLFLOW_TRACKING_URI" in env_vars]) >= 3
    for service in ("postgres", "minio", "mlflow"):
        assert ("Service", service) in documents


def test_mlflow_compose_file_is_complete():
    compose = yaml.safe_load((CLUSTER / "mlflow" / "docker-compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], (name, volume)
    command = services["mlflow"]["command"]
    assert command[0] == "server"
    params = mlflow_server_params(command[1:])
    backend = params["backend_store_uri"]
    assert backend.startswith("postgresql+psycopg2://") and "@postgres:5432/" in backend
    assert params["artifacts_destination"].startswith("s3://mlflow/")
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    with pytest.raises(Exception):  # the parser does refuse what MLflow does not know
        mlflow_server_params(["--backend-store", "x"])
