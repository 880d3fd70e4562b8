"""The evaluate stage: grey baseline == `colorization metrics`, Ray == one process, bad input never aborts,
bad models fail before any work, the report and the MLflow run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from colorization.cli.metrics import pair_images, score_pairs
from colorization.color.ab_bins import default_ab_bins
from colorization.errors import UserError
from colorization.evaluation.protocol import grey_baseline
from colorization.evaluation.scoring import GREY_LABEL, GREY_MODEL
from colorization.io.images import tensor_to_image
from colorization.stages.evaluate import EvaluateConfig, run
from tests.evaluation.conftest import CROP


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, few_images) -> Path:
    """The few photos plus one truncated JPEG (it must be counted and named, never abort the run)."""
    folder = tmp_path_factory.mktemp("eval-images")
    for path in few_images:
        shutil.copy(path, folder / path.name)
    (folder / "broken.JPEG").write_bytes(few_images[0].read_bytes()[:300])
    return folder


def test_grey_baseline_through_evaluate_equals_the_metrics_command(tmp_path, image_folder, truth_crops):
    result = run(EvaluateConfig(models=(), out=tmp_path / "report", images=image_folder, size=CROP,
                                use_ray=False, mlflow=False, samples=0))
    grey_row = next(row for row in result.rows if row["model"] == GREY_MODEL and row["label"] == GREY_LABEL)
    # The same grey predictions as files, scored by `colorization metrics` against the original photos.
    predictions, truths = tmp_path / "grey", tmp_path / "truth"
    predictions.mkdir(), truths.mkdir()
    readable = sorted(p for p in image_folder.iterdir() if p.name != "broken.JPEG")
    for path, crop in zip(readable, grey_baseline(truth_crops)):
        tensor_to_image(crop).save(predictions / f"{path.stem}.png")
        shutil.copy(path, truths / path.name)
    reference = score_pairs(pair_images(predictions, truths), default_ab_bins(), CROP, progress=False).summary()
    for key in ("images", "excluded_colourless", "auc", "rebalanced_auc", "psnr", "colourfulness_truth"):
        assert grey_row[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-12), key
    assert grey_row["auc"] == reference["auc"]  # integer histograms: exactly the same AuC
    assert result.failures == [(str(image_folder / "broken.JPEG"), result.failures[0][1])]
    assert "truncated" in result.failures[0][1] or "unreadable" in result.failures[0][1]


@pytest.mark.ray
def test_ray_result_equals_the_single_process_result(ray_session, tiny_checkpoints, image_folder):
    from colorization.distributed.evaluate import EvaluateWorker, evaluate_locally, evaluate_with_ray
    from colorization.evaluation.sweep import custom_sweep
    from colorization.families import adapter_for
    from colorization.inference import load_model

    model = load_model(tiny_checkpoints["zhang"])
    entries = custom_sweep(adapter_for(model), model, ("annealed_mean", "mode"), (0.38, 1.0))
    kwargs = {"models": [("zhang", str(tiny_checkpoints["zhang"]))], "sweeps": {"zhang": entries},
              "bins": default_ab_bins().double().numpy(), "size": CROP, "batch_size": 1}
    paths = sorted(str(p) for p in image_folder.iterdir())
    # Float convolutions depend on the batch and the thread count; Ray's actors run one thread (OMP_NUM_THREADS=1)
    # and the batches are single images here, so both sides compute the very same floats.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = evaluate_locally(EvaluateWorker(**kwargs), image_paths=paths, batch_size=1)
    finally:
        torch.set_num_threads(threads)
    distributed = evaluate_with_ray(kwargs, image_paths=paths, batch_size=1, actors=2)
    assert set(local.rows) == set(distributed.rows) and len(local.rows) == 4
    for key in local.rows:
        assert np.array_equal(local.rows[key].histogram.counts, distributed.rows[key].histogram.counts), key
        assert local.rows[key].images == distributed.rows[key].images
        assert local.rows[key].psnr_sum == pytest.approx(distributed.rows[key].psnr_sum, rel=1e-12)
    assert local.failures == distributed.failures and len(local.failures) == 1
    assert local.network_images == distributed.network_images == {"zhang": len(paths) - 1}


def test_models_that_are_not_colorizers_fail_before_any_work(tmp_path, image_folder):
    text = tmp_path / "notes.safetensors"
    text.write_text("not a checkpoint")
    for source, pattern in ((str(text), "notes.safetensors: not a (readable|usable)"),
                            (str(tmp_path / "missing.safetensors"), "no such file")):
        with pytest.raises(UserError, match=pattern) as caught:
            run(EvaluateConfig(models=(source,), out=tmp_path / "out", images=image_folder, use_ray=True))
        assert "\n" not in str(caught.value)
    with pytest.raises(UserError) as caught:  # a registry alias that does not exist
        run(EvaluateConfig(models=("models:/nothing@champion",), out=tmp_path / "out", images=image_folder,
                           use_ray=True, tracking_uri=f"sqlite:///{tmp_path / 'registry.db'}"))
    assert "nothing" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="lies inside the input"):
        run(EvaluateConfig(models=(), out=image_folder / "report", images=image_folder, use_ray=True))


def test_report_files_recommendation_and_mlflow_run(tmp_path, tiny_checkpoints, image_folder):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run(EvaluateConfig(models=(str(tiny_checkpoints["zhang"]), str(tiny_checkpoints["larsson"])),
                                out=tmp_path / "report", images=image_folder, size=CROP, limit=3, use_ray=False,
                                temperatures=(0.2, 1.0), decoders=("annealed_mean", "median"),
                                tracking_uri=uri, samples=2, write_temperature=None))
    assert set(result.files) == {"report.json", "report.md", "report.csv", "temperature_sweep.png", "samples.png"}
    record = json.loads(result.files["report.json"].read_text())
    labels = [(row["model"], row["label"]) for row in record["rows"]]
    assert labels == [(GREY_MODEL, GREY_LABEL), ("zhang", "annealed_mean T=0.2"), ("zhang", "annealed_mean T=1"),
                      ("larsson", "median, fading"), ("larsson", "median, no fading")]
    assert record["network_images"] == {"zhang": 2, "larsson": 2}  # the first 3 sorted inputs hold broken.JPEG
    assert [failure["input"] for failure in record["failures"]] == [str(image_folder / "broken.JPEG")]
    assert record["recommended_temperature"]["zhang"]["temperature"] in (0.2, 1.0)
    assert record["recommended_temperature"]["larsson"] is None
    assert result.files["temperature_sweep.png"].read_bytes()[:4] == b"\x89PNG"
    mlflow.set_tracking_uri(uri)
    run_data = mlflow.get_run(result.mlflow_run_id)
    assert run_data.data.tags["model.zhang.digest"] == record["models"]["zhang"]["digest"]
    assert any(key.startswith("auc/") for key in run_data.data.metrics)


def test_shards_score_the_stored_crops_of_the_split(tmp_path, truth_crops):
    """A hand-built shard folder (val + train rows): only val rows are scored, --limit counts rows."""
    import pyarrow.parquet as pq

    from colorization.io.shards import rgb8_to_quantized_lab, shard_record_batch, shard_schema

    schema = shard_schema(CROP)
    stored = [rgb8_to_quantized_lab(crop.permute(1, 2, 0).numpy(), use_table=False) for crop in truth_crops]
    rows = [{"path": f"x{i}.JPEG", "split": "val" if i < 4 else "train", "synset": None, "label": -1,
             "original_width": CROP, "original_height": CROP, "source_mode": "RGB", "has_alpha": False,
             "colourless": False} for i in range(len(stored))]
    shards = tmp_path / "shards"
    (shards / "val").mkdir(parents=True)
    batch = shard_record_batch(rows, np.stack([l for l, _ in stored]), np.stack([ab for _, ab in stored]), schema)
    pq.write_table(pa_table(batch), shards / "val" / "val-00000.parquet")
    (shards / "manifest.json").write_text(json.dumps({"status": "complete", "shards": [
        {"file": "val/val-00000.parquet", "split": "val"}]}))
    result = run(EvaluateConfig(models=(), out=tmp_path / "report", shards=shards, split="val", use_ray=False,
                                mlflow=False, samples=1, limit=5))
    grey = result.rows[0]
    assert grey["images"] + grey["excluded_colourless"] == 4  # 5 rows read, the fifth is a train row
    assert "samples.png" in result.files


def pa_table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def test_models_with_the_same_file_name_are_logged_under_valid_mlflow_names(tmp_path, tiny_checkpoints, image_folder):
    """Two checkpoints named alike become "zhang" and "zhang #2" in the table; MLflow refuses '#' in metric and tag
    names, so the run must still be logged (under sanitized keys), not crash after the work is done."""
    import mlflow

    twin = tmp_path / "other" / tiny_checkpoints["zhang"].name
    twin.parent.mkdir()
    shutil.copy(tiny_checkpoints["zhang"], twin)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run(EvaluateConfig(models=(str(tiny_checkpoints["zhang"]), str(twin)), out=tmp_path / "report",
                                images=image_folder, size=CROP, limit=2, use_ray=False, temperatures=(0.38,),
                                decoders=("annealed_mean",), tracking_uri=uri, samples=0, write_temperature=None))
    record = json.loads(result.files["report.json"].read_text())
    assert sorted(record["models"]) == ["zhang", "zhang #2"]
    mlflow.set_tracking_uri(uri)
    logged = mlflow.get_run(result.mlflow_run_id).data
    assert {"model.zhang.digest", "model.zhang__2.digest"} <= set(logged.tags)
    assert sum(key.startswith("auc/zhang__2/") for key in logged.metrics) == 1
