"""``colorization serve`` and the serve stage refuse bad arguments with one line (exit 2) before Ray starts."""

from __future__ import annotations

import socket

import pytest

from colorization.cli.main import main
from colorization.errors import UserError
from colorization.stages.serve import ServeConfig, _check_port_free
from colorization.serving.settings import ModelSpec, ServingSettings


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve"], "no model to serve"),
        (["serve", "--model", "zhang"], "expected NAME=CHECKPOINT"),
        (["serve", "--model", "a=/no/such.safetensors"], "checkpoint not found"),
        (["serve", "--model", "a=/x", "--model", "a=/y"], "unique"),
        (["serve", "--model", "a=/x", "--port", "70000"], "--port"),
        (["serve", "--model", "a=/x", "--max-batch-size", "0"], "max_batch_size"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("colorization serve: error:")


def test_port_in_use_is_a_user_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UserError, match="choose another --port"):
            _check_port_free("127.0.0.1", taken.getsockname()[1])


def test_url_and_workflow_arguments_match_the_cli():
    import argparse

    from workflows.serve import add_arguments

    settings = ServingSettings(models=(ModelSpec("a", "/x"),))
    assert ServeConfig(settings=settings, host="0.0.0.0", port=9000).url == "http://127.0.0.1:9000/"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "a=/x", "--replicas", "2", "--smoke-test"])
    assert args.smoke_test and args.replicas == 2 and args.host == "127.0.0.1"


def test_a_file_that_is_no_checkpoint_is_refused_before_ray(tmp_path, capsys):
    fake = tmp_path / "photo.safetensors"
    fake.write_bytes(b"\xff\xd8 not a checkpoint")
    assert main(["serve", "--model", f"a={fake}"]) == 2
    assert "model 'a': checkpoint" in capsys.readouterr().err
