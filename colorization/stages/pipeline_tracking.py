"""The pipeline's parent MLflow run: created once per output folder, the stages' runs nested under it.

Stages open their own runs (in this process, in Ray Train's rank-0 worker, or on another node), so the parent is
never the *active* fluent run: it is created and closed through ``MlflowClient``, and each stage's run is nested
afterwards by tagging it with ``mlflow.parentRunId`` (what ``mlflow.start_run(nested=True)`` writes; the MLflow UI
shows the stages under the pipeline). A rerun into the same output folder reopens the same parent run, so the
runs of skipped stages stay under it. MLflow is imported here only, inside the functions.
"""

from __future__ import annotations

from typing import Any

from colorization.errors import UserError

__all__ = ["PARENT_RUN_NAME", "ParentRun"]

PARENT_RUN_NAME = "pipeline"
_STAGE_TAG = "colorization.stage"
_MAX_PARAM_CHARS = 500  # MLflow's param value limit is 6000 in 3.x; keep the UI readable


class ParentRun:
    """The pipeline's run in ``experiment`` at ``tracking_uri``.

    Args:
        tracking_uri: resolved tracking URI.
        experiment: experiment name (created if missing).
        previous_run_id: the parent run of an earlier attempt in the same output folder, reopened if it exists.
    """

    def __init__(self, tracking_uri: str | None, experiment: str, previous_run_id: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        from colorization.tracking import configure_tracking

        try:
            self.tracking_uri, self.experiment_id = configure_tracking(experiment, tracking_uri)
        except Exception as error:  # an unreachable server or a bad URI: the user's to fix
            raise UserError(f"MLflow tracking store {tracking_uri or '(default)'}: {error}") from None
        self.client = MlflowClient(self.tracking_uri)
        self.run_id = self._reopen(previous_run_id) or self.client.create_run(
            self.experiment_id, run_name=PARENT_RUN_NAME, tags={_STAGE_TAG: PARENT_RUN_NAME}
        ).info.run_id

    def _reopen(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except Exception:  # deleted, or another store: start a new parent
            return None
        if run.info.experiment_id != self.experiment_id or run.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def log_params(self, params: dict[str, Any]) -> None:
        """Logs params, skipping those already logged with the same value (a rerun) and tagging changed ones."""
        existing = self.client.get_run(self.run_id).data.params
        for key, value in params.items():
            text = str(value)[:_MAX_PARAM_CHARS]
            if key not in existing:
                self.client.log_param(self.run_id, key, text)
            elif existing[key] != text:  # params are immutable: a changed value is recorded as a tag
                self.client.set_tag(self.run_id, f"latest.{key}", text)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, float(value))

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value)[:_MAX_PARAM_CHARS])

    def adopt(self, run_id: str, stage: str) -> None:
        """Nests a stage's run under this one (the tag ``start_run(nested=True)`` would have written)."""
        self.client.set_tag(run_id, "mlflow.parentRunId", self.run_id)
        self.client.set_tag(run_id, "colorization.pipeline_stage", stage)

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, path, artifact_path)

    def finish(self, succeeded: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")
