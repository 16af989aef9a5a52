"""A checkpoint with one tensor of the wrong shape: one line naming the tensor and both shapes, exit 2 (issue 17)."""

import shutil

import pytest
import torch

from ipo_robust.checkpoint import CheckpointError, find_checkpoint
from ipo_robust.training.loop import run_training
from tests.cli.test_cli import run_cli
from tests.test_checkpoint import rewrite_tensor
from tests.test_train import tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    run_training(tiny(iterations=2), run)  # sumo-pushers, hidden [8], value critics of 64 units
    return run


@pytest.fixture
def run(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "run")


def one_line_exit_2(result, message):
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"ipo-robust: error: {message}"]


AGENT = ".agents.0.mean_net.0.weight"
AGENT_MESSAGE = "tensor 'agents.0.mean_net.0.weight' has shape (8, 14) in the file but the model expects (8, 16)"


def test_resume_names_a_critic_tensor_of_the_wrong_shape(run):
    checkpoint = find_checkpoint(run)
    rewrite_tensor(checkpoint, ".optimizer.critics.weights.1.net.0.weight", torch.zeros(64, 30))
    with pytest.raises(CheckpointError) as error:
        run_training(tiny(iterations=2), run, resume=True)
    assert str(error.value) == (f"checkpoint {str(checkpoint)!r}: tensor 'optimizer.critics.weights.1.net.0.weight' "
                                "has shape (64, 30) in the file but the model expects (64, 32)")


def test_train_resume_prints_one_line(run):
    checkpoint = find_checkpoint(run)
    rewrite_tensor(checkpoint, AGENT, torch.zeros(8, 14))
    one_line_exit_2(run_cli("train", str(run), "--resume", "--no-progress"),
                    f"checkpoint {str(checkpoint)!r}: {AGENT_MESSAGE}")


def test_render_prints_one_line(run, tmp_path):
    checkpoint = find_checkpoint(run)
    rewrite_tensor(checkpoint, AGENT, torch.zeros(8, 14))
    result = run_cli("render", "sumo-pushers", "--checkpoint", str(run), "--out", str(tmp_path / "x.gif"),
                     "--steps", "2", env_extra={"MUJOCO_GL": "disable"})
    one_line_exit_2(result, f"checkpoint {str(checkpoint)!r}: {AGENT_MESSAGE}")
    assert not (tmp_path / "x.gif").exists()


def test_a_rewritten_file_with_its_old_hash_is_one_line_too(run):
    checkpoint = find_checkpoint(run)
    rewrite_tensor(checkpoint, AGENT, torch.zeros(8, 14), rehash=False)
    one_line_exit_2(run_cli("train", str(run), "--resume", "--no-progress"),
                    f"checkpoint {str(checkpoint)!r} is corrupted: tensors.safetensors does not match the sha256 "
                    "recorded in meta.json")


def test_an_adam_moment_of_the_wrong_shape_is_named_on_resume(run):
    """Optimizer moments are checked against their parameters after the load (torch's Adam does not check)."""
    checkpoint = find_checkpoint(run)
    rewrite_tensor(checkpoint, ".optimizer.critics.optimizers.1.state.2.exp_avg", torch.zeros(64, 63))
    one_line_exit_2(run_cli("train", str(run), "--resume", "--no-progress"),
                    f"checkpoint {str(checkpoint)!r}: tensor 'optimizer.critics.optimizers.1.state.2.exp_avg' has "
                    "shape (64, 63) in the file but its parameter has shape (64, 64)")
