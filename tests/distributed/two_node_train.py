"""A simulated 2-node Ray cluster trains both models with DDP (gloo), one worker per node; run in a subprocess.

    python -m tests.distributed.two_node_train SHARDS_DIR WORK_DIR

(the pytest session already holds a Ray, so this needs its own process). ``ray.cluster_utils.Cluster`` starts a
head and a second node (2 logical CPUs each); ``ScalingConfig(num_workers=2, placement_strategy="STRICT_SPREAD")``
forces one training worker onto each. For each model the workers

1. compute DDP gradients on their half of one fixed global batch of real shard images (each half with its own
   seeded sampling generator and dropout seed), and rank 0 saves them;
2. run the project's training loop for a few steps (DDP, gloo) and compare a checksum of their weights.

The driver recomputes the gradients in one process, without DDP: the mean of the two halves' gradients (the same
seeds), which is what DDP's all-reduce must produce. Prints one JSON line: nodes, gradient errors, checksums.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

MODELS = {
    "zhang-smoke": ("zhang_eccv16_w8", {"input_size": 32}),
    "larsson-smoke": ("larsson_hypercolumn_w16", {"input_size": 32, "sampled_pixels": 32}),
}
HALF = 2  # images per worker
SIDE = 32
LOOP_STEPS = 3


def _losses_gradients(model, lab: torch.Tensor, rank: int) -> dict[str, torch.Tensor]:
    """Gradients of one half's loss (its sampling generator and dropout seeded by the rank)."""
    from colorization.families import LossInputs, adapter_for

    adapter = adapter_for(model)
    torch.manual_seed(1000 + rank)
    generator = torch.Generator().manual_seed(2000 + rank)
    terms = adapter.loss_terms(model, lab, LossInputs(generator=generator))
    terms.loss.backward()
    core = adapter.core(model)
    return {name: param.grad.detach().clone() for name, param in core.named_parameters() if param.grad is not None}


def worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    from colorization.distributed.train_worker import SyncCalibration
    from colorization.models.registry import create_model
    from colorization.training.loop import train_loop
    from colorization.training.recipes import load_recipe

    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    work = Path(config["work"])
    batch = torch.load(work / "batch.pt", weights_only=True)
    half = batch[rank * HALF : (rank + 1) * HALF]
    record = {"rank": rank, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "checksums": {}}
    for recipe, (variant, overrides) in MODELS.items():
        torch.manual_seed(0)
        model = ray.train.torch.prepare_model(create_model(variant, **overrides))  # DDP over gloo
        gradients = _losses_gradients(model, half, rank)
        if rank == 0:
            torch.save(gradients, work / f"{recipe}_ddp_gradients.pt")
        model.zero_grad(set_to_none=True)
        train = load_recipe(
            recipe,
            [
                f"schedule.max_steps={LOOP_STEPS}",
                f"batch.global_size={HALF * world_size}",
                f"batch.per_worker={HALF}",
                "cadence.validate_every=0",
                "cadence.checkpoint_every=0",
            ],
        )
        batches = iter([half] * (LOOP_STEPS + 1))
        summary = train_loop(
            train,
            model,
            batches,
            device="cpu",
            hooks=[SyncCalibration(model, world_size)],
            rank=rank,
            world_size=world_size,
        )
        # Parameters only: BatchNorm's running statistics follow each rank's own batches between DDP's broadcasts.
        checksum = sum(float(p.double().sum()) for p in model.module.parameters())
        record["checksums"][recipe] = {"steps": summary.step, "weights": checksum}
    (work / f"rank_{rank}.json").write_text(json.dumps(record))
    ray.train.report({"rank": rank})


def _reference_gradients(batch: torch.Tensor, variant: str, overrides: dict) -> dict[str, torch.Tensor]:
    from colorization.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(variant, **overrides).train()
    summed: dict[str, torch.Tensor] = {}
    for rank in range(2):
        model.zero_grad(set_to_none=True)
        for name, gradient in _losses_gradients(model, batch[rank * HALF : (rank + 1) * HALF], rank).items():
            summed[name] = summed.get(name, 0) + gradient / 2
    return summed


def main(shards: str, work_dir: str) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from colorization.io.manifest import shard_files
    from colorization.training.data import centre_crop, lab_batch, read_rows

    torch.set_num_threads(1)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = read_rows(shard_files(shards, "train"), 2 * HALF)
    batch = centre_crop(lab_batch(rows["L"], rows["ab"]), SIDE)
    torch.save(batch, work / "batch.pt")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        trainer = TorchTrainer(
            worker,
            train_loop_config={"work": str(work)},
            scaling_config=ScalingConfig(
                num_workers=2, resources_per_worker={"CPU": 1}, placement_strategy="STRICT_SPREAD"
            ),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(name="two-node", storage_path=str(work / "ray")),
        )
        trainer.fit()
    finally:
        ray.shutdown()
        cluster.shutdown()

    ranks = [json.loads((work / f"rank_{rank}.json").read_text()) for rank in range(2)]
    report = {"nodes": [r["node"] for r in ranks], "checksums": [r["checksums"] for r in ranks], "gradients": {}}
    for recipe, (variant, overrides) in MODELS.items():
        ddp = torch.load(work / f"{recipe}_ddp_gradients.pt", weights_only=True)
        reference = _reference_gradients(batch, variant, overrides)
        worst = max(
            float((ddp[name] - reference[name]).abs().max() / reference[name].abs().max().clamp_min(1e-12))
            for name in reference
        )
        report["gradients"][recipe] = {"names": sorted(ddp) == sorted(reference), "max_relative_error": worst}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
