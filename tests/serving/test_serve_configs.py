"""cluster/serve.yaml satisfies Ray's ServeDeploySchema and builds this project's application; the KubeRay
RayService carries the same application in serveConfigV2 and has the shape KubeRay reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from colorization.serving.settings import ModelSpec, ServingSettings

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def validated(config: dict):
    from ray.serve.schema import DeploymentSchema, ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    for application in config["applications"]:
        for deployment in application.get("deployments", []):
            unknown = set(deployment) - set(DeploymentSchema.model_fields)
            assert not unknown, f"unknown deployment fields {unknown}"  # the schema itself lets extras through
    return schema


def check_application(application: dict) -> None:
    from colorization.serving.app import app_builder, model_deployment_name

    module, _, attribute = application["import_path"].partition(":")
    assert f"{module}:{attribute}" == "colorization.serving.app:app_builder" and callable(app_builder)
    settings = ServingSettings.from_dict(application["args"])  # every arg is a settings field
    assert {spec.name for spec in settings.models} == {"zhang", "larsson"}
    names = {deployment["name"] for deployment in application["deployments"]}
    assert names == {model_deployment_name(spec.name) for spec in settings.models} | {"ingress"}
    for deployment in application["deployments"]:
        if deployment["name"] != "ingress":
            assert deployment["max_ongoing_requests"] >= settings.max_batch_size  # or batches never fill


def test_serve_config_matches_rays_schema_and_the_app():
    config = yaml.safe_load((CLUSTER / "serve.yaml").read_text())
    schema = validated(config)
    assert schema.http_options.port == 8000
    (application,) = config["applications"]
    check_application(application)


def test_rayservice_manifest_shape_and_same_application():
    manifest = yaml.safe_load((CLUSTER / "kuberay" / "rayservice.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    spec = manifest["spec"]
    serve_config = yaml.safe_load(spec["serveConfigV2"])
    validated(serve_config)
    (application,) = serve_config["applications"]
    check_application(application)
    (local,) = yaml.safe_load((CLUSTER / "serve.yaml").read_text())["applications"]
    assert application == local  # the two stay in step
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert 8000 in {port["containerPort"] for port in head["ports"]}
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        container = group["template"]["spec"]["containers"][0]
        assert any(env["name"] == "COLORIZATION_API_KEY" for env in container["env"])


def test_app_builder_refuses_bad_args():
    from colorization.errors import UserError
    from colorization.serving.app import app_builder

    with pytest.raises(UserError):
        app_builder({"models": {"bad name": "/x"}})
    app = app_builder({"models": {"a": "/a.safetensors"}})
    assert app is not None and ServingSettings.from_dict({"models": ["a=/a.safetensors"]}).models == (
        ModelSpec("a", "/a.safetensors"),
    )
