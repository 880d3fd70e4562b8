"""TrainConfig and recipes: round trips, typed overrides, refusals, batch arithmetic, the papers' solvers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from colorization.errors import UserError
from colorization.training.config import TrainConfig
from colorization.training.recipes import apply_overrides, available_recipes, load_recipe, parse_override

SHIPPED = ("zhang-imagenet", "larsson-imagenet", "zhang-local", "larsson-local", "zhang-smoke", "larsson-smoke")


def test_every_issue_recipe_ships() -> None:
    assert set(SHIPPED) <= set(available_recipes())


@pytest.mark.parametrize("name", SHIPPED)
def test_recipe_round_trips_through_asdict_and_json(name: str) -> None:
    config = load_recipe(name)
    assert config.recipe == name
    assert TrainConfig.from_dict(dataclasses.asdict(config)) == config
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_zhang_imagenet_is_the_authors_solver() -> None:
    """paper-facts.md: Adam 3e-5, betas (0.9, 0.99), wd 1e-3, batch 40, 176 crops + mirror, k=10 sigma=5,
    lr x0.1 at 225k of 450k."""
    config = load_recipe("zhang-imagenet")
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.betas) == ("adam", 3e-5, (0.9, 0.99))
    assert config.optimizer.weight_decay == 1e-3
    assert config.batch.global_size == 40
    assert (config.data.crop, config.data.flip, config.data.resize) == (176, True, None)
    assert (config.loss.soft_encode_neighbours, config.loss.soft_encode_sigma) == (10, 5.0)
    assert (config.schedule.max_steps, config.schedule.lr_steps, config.schedule.gamma) == (450_000, (225_000,), 0.1)


def test_larsson_imagenet_is_the_released_solver() -> None:
    config = load_recipe("larsson-imagenet")
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.momentum) == ("sgd", 1e-3, 0.9)
    assert config.optimizer.weight_decay == 5e-4
    assert (config.optimizer.bias_lr_mult, config.optimizer.bias_weight_decay) == (2.0, False)
    assert config.batch.global_size == 8
    assert config.model.overrides["heads"] == ("hue_chroma",)
    assert config.model.overrides["sampled_pixels"] == 128
    assert config.schedule.lr_steps == (1_000_000, 1_500_000, 1_750_000)
    other = load_recipe("larsson-imagenet", ["model.overrides.heads=[lab_marginal, l2]"])
    assert other.model.overrides["heads"] == ("lab_marginal", "l2")


def test_overrides_are_typed() -> None:
    config = load_recipe(
        "zhang-smoke",
        ["optimizer.lr=1e-4", "schedule.lr_steps=[2, 5]", "batch.per_worker=null", "data.flip=false", "seed=7"],
    )
    assert config.optimizer.lr == pytest.approx(1e-4) and isinstance(config.optimizer.lr, float)
    assert config.schedule.lr_steps == (2, 5)
    assert config.batch.per_worker is None
    assert config.data.flip is False
    assert config.seed == 7
    assert parse_override("data.shards=\"1e5\"") == (["data", "shards"], "1e5")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optimizer.lr=fast", "optimizer.lr"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("optimizer.name=rmsprop", "optimizer.name"),
        ("optimizer.betas=[0.9]", "optimizer.betas"),
        ("schedule.lr_steps=[5, 2]", "schedule.lr_steps"),
        ("schedule.max_steps=2.5", "schedule.max_steps"),
        ("data.crop=30", "data.crop"),
        ("data.crop=64", "data.crop"),  # larger than data.resize (40) of the smoke recipe
        ("data.train_split=holdout", "data.train_split"),
        ("batch.per_worker=3", "batch"),  # 4 images per step do not split into passes of 3
        ("scaling.precision=fp16", "scaling.precision"),
        ("data.flip=yes please", "data.flip"),
        ("optimiser.lr=1", "optimiser"),
        ("model.variant=resnet50", "model.variant"),
        ("model.overrides.input_size=36", "input_size"),
        ("model.overrides.width_multiplier=0", "width_multiplier"),
        ("model.overrides.no_such_field=1", "no_such_field"),
        ("cadence.sample_images=99", "cadence.sample_images"),
        ("data.scale=[0.5]", "data.scale"),
        ("data.scale=[0.9, 0.5]", "data.scale"),
        ("data.scale=[0, 1]", "data.scale"),
        ("data.scale=[0.5, 1.5]", "data.scale"),
        ("data.scale=wide", "data.scale"),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_key(override: str, named: str) -> None:
    with pytest.raises(UserError) as raised:
        load_recipe("zhang-smoke", [override])
    message = str(raised.value)
    assert named in message and "\n" not in message


def test_a_zoom_without_whole_images_is_refused() -> None:
    assert load_recipe("zhang-smoke", ["data.scale=[0.5, 1]"]).data.scale == (0.5, 1.0)
    with pytest.raises(UserError, match="data.scale needs data.resize"):
        load_recipe("zhang-smoke", ["data.scale=[0.5, 1]", "data.resize=null"])


def test_unknown_recipe_and_bad_files_are_refused(tmp_path) -> None:
    with pytest.raises(UserError, match="neither a shipped recipe"):
        load_recipe("no-such-recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="mapping"):
        load_recipe(str(bad))
    custom = tmp_path / "mine.yaml"
    custom.write_text("model: {variant: zhang_eccv16_w8}\nschedule: {max_steps: 3, lr_steps: []}\n")
    assert load_recipe(str(custom)).recipe == "mine"


def test_global_batch_is_constant_across_worker_counts() -> None:
    config = TrainConfig.from_dict({"batch": {"global_size": 40, "per_worker": 10}})
    for workers, accumulation in ((1, 4), (2, 2), (4, 1)):
        assert config.per_worker_batch(workers) * workers * config.accumulation_steps(workers) == 40
        assert config.accumulation_steps(workers) == accumulation
    automatic = TrainConfig.from_dict({"batch": {"global_size": 40}})
    assert [automatic.per_worker_batch(n) for n in (1, 2, 8)] == [40, 20, 5]
    with pytest.raises(UserError):
        automatic.per_worker_batch(3)


def test_flatten_gives_params_and_leaves_bin_sets_out() -> None:
    bins = [[float(a), float(b)] for a in range(-50, 60, 10) for b in range(-50, 60, 10)]
    config = TrainConfig.from_dict({"model": {"variant": "zhang_eccv16", "overrides": {"ab_bins": bins}}})
    flat = config.flatten()
    assert flat["optimizer.lr"] == config.optimizer.lr
    assert flat["optimizer.betas"] == "0.9,0.99"
    assert flat["loss.prior"] == "None"
    assert "model.overrides.ab_bins" not in flat  # an array: logged as an artifact (to_json), not as a param
    assert all(not isinstance(value, (list, tuple, dict)) for value in flat.values())
    assert json.loads(config.to_json())["model"]["overrides"]["ab_bins"] == bins
