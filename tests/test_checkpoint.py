"""Checkpoint files: exact round trips, atomic writes, and refusal of corrupted or foreign files."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

import ipo_robust
from ipo_robust.checkpoint import (
    CheckpointError,
    flatten_state,
    load_checkpoint,
    policy_from_spec,
    policy_spec,
    save_agents,
    save_checkpoint,
    unflatten_state,
)
from ipo_robust.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    StateDependentStdGaussianPolicy,
    TabularCategoricalPolicy,
)


def test_state_trees_round_trip_exactly():
    policy = GaussianMLPPolicy(3, 2, (4,))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    policy.distribution(torch.randn(5, 3)).log_prob(torch.randn(5, 2)).sum().backward()
    optimizer.step()
    tree = {"adam": optimizer.state_dict(), "rng": torch.Generator().manual_seed(7).get_state(),
            "mixed": (1, 2.5, float("nan"), None, True, "x", [1, {"y": torch.arange(3)}]), 10: "int key"}
    with pytest.raises(TypeError, match="all str or all int"):
        flatten_state(tree)
    tree.pop(10)
    skeleton, tensors = flatten_state(tree)
    json.dumps(skeleton)  # the non-tensor part is plain JSON
    back = unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    assert back["adam"]["state"].keys() == optimizer.state_dict()["state"].keys()  # int keys restored
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(back["adam"]["state"][0][key], value)
    assert torch.equal(back["rng"], tree["rng"])
    assert back["mixed"][:2] == (1, 2.5) and math.isnan(back["mixed"][2]) and back["mixed"][3:6] == (None, True, "x")
    assert torch.equal(back["mixed"][6][1]["y"], torch.arange(3))
    with pytest.raises(TypeError, match="pickling"):
        flatten_state({"object": object()})


@pytest.mark.parametrize("policy,obs_dim", [(CategoricalMLPPolicy(4, 3, (5, 6)), 4), (GaussianMLPPolicy(4, 2, ()), 4),
                                            (TabularCategoricalPolicy(3, 2), 2),
                                            (GaussianMLPPolicy(2, 1, (3,)).double(), 2),
                                            (StateDependentStdGaussianPolicy(3, 4, (1, 2), (5,), log_std_init=1.0,
                                                                             log_std_min=0.5, log_std_max=3.0), 3),
                                            (StateDependentStdGaussianPolicy(2, 2, (0, 1), ()).double(), 2)])
def test_policy_specs_rebuild_the_same_architecture(policy, obs_dim):
    rebuilt = policy_from_spec(json.loads(json.dumps(policy_spec(policy))))
    rebuilt.load_state_dict(policy.state_dict())
    assert type(rebuilt) is type(policy)
    obs = torch.eye(obs_dim).repeat(3, 1).to(next(policy.parameters()))
    actions = policy.act(obs, torch.Generator().manual_seed(0))
    assert torch.equal(policy.distribution(obs).log_prob(actions), rebuilt.distribution(obs).log_prob(actions))


def _victim(tmp_path):
    env = ipo_robust.make_env("rock-paper-scissors")
    agents = ipo_robust.make_agents(env, seed=0, hidden=(4,))
    return save_agents(tmp_path / "run", agents, "rock-paper-scissors"), agents


def test_saved_agents_load_bit_identical_and_play_their_env(tmp_path):
    path, agents = _victim(tmp_path)
    loaded = load_checkpoint(tmp_path / "run")  # the run directory resolves through `latest`
    assert loaded.path == path
    for original, restored in zip(agents, loaded.load_agents(), strict=True):
        for p, q in zip(original.parameters(), restored.parameters(), strict=True):
            assert torch.equal(p, q)
    assert loaded.make_env(num_envs=3, seed=0).num_envs == 3
    assert load_checkpoint(path / "meta.json").path == path


def test_a_learned_location_holder_round_trips_with_its_std_head(tmp_path):
    options = {"perturbation": "learned-location", "holder": 1}
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, **options)
    agents = ipo_robust.make_agents(env, seed=0, hidden=(4,))
    with torch.no_grad():
        agents[1].log_std_head.weight.normal_(generator=torch.Generator().manual_seed(0))  # trained-looking
    path = save_agents(tmp_path / "run", agents, "sumo-pushers", options)
    loaded = load_checkpoint(path)
    assert loaded.meta["agents"][1]["class"] == "StateDependentStdGaussianPolicy"
    restored = loaded.load_agents()
    assert isinstance(restored[1], StateDependentStdGaussianPolicy)
    assert restored[1].state_dependent_dims == agents[1].state_dependent_dims
    for original, back in zip(agents, restored, strict=True):
        names = [n for n, _ in original.named_parameters()]
        assert names == [n for n, _ in back.named_parameters()]
        assert all(torch.equal(p, q) for p, q in zip(original.parameters(), back.parameters(), strict=True))
    obs = torch.as_tensor(loaded.make_env(num_envs=2, seed=0).reset(seed=0)[1], dtype=torch.float32)
    assert torch.equal(restored[1].log_std_at(obs), agents[1].log_std_at(obs))


def test_old_checkpoints_are_pruned_and_latest_points_at_the_newest(tmp_path):
    for i in range(5):
        save_checkpoint(tmp_path, i, {"x": torch.tensor([i])}, {}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-000003", "ckpt-000004"]
    assert load_checkpoint(tmp_path).state["x"].item() == 4


def test_a_corrupted_tensor_file_is_refused(tmp_path):
    path, _ = _victim(tmp_path)
    data = bytearray((path / "tensors.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (path / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


def test_foreign_and_malformed_files_are_refused_without_unpickling(tmp_path):
    path, _ = _victim(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an ipo-robust checkpoint"):
        load_checkpoint(path)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable checkpoint sidecar"):
        load_checkpoint(path)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    pickled = tmp_path / "evil.pt"
    pickled.write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(CheckpointError, match="not an ipo-robust checkpoint"):
        load_checkpoint(pickled)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "meta.json").write_text(json.dumps({**meta, "sha256": None}))
    (fake / "tensors.safetensors").write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(fake)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")


def test_a_mismatched_policy_spec_is_a_clear_error(tmp_path):
    path, _ = _victim(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    meta["agents"][0]["hidden"] = [9]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"tensor 'agents\.0\.logits_net\.0\.weight' has shape \(4, 1\) in "
                       r"the file but the model expects \(9, 1\)$"):
        load_checkpoint(path).load_agents()


def rewrite_tensor(checkpoint, name, tensor=None, rehash=True):
    """Replace (or with None drop) one tensor of a checkpoint; with ``rehash`` record the new file's sha256."""
    import hashlib

    from safetensors.torch import load_file, save_file

    tensors = load_file(checkpoint / "tensors.safetensors")
    if tensor is None:
        tensors.pop(name)
    else:
        tensors[name] = tensor
    save_file(tensors, checkpoint / "tensors.safetensors")
    if rehash:
        meta = json.loads((checkpoint / "meta.json").read_text())
        meta["sha256"] = hashlib.sha256((checkpoint / "tensors.safetensors").read_bytes()).hexdigest()
        (checkpoint / "meta.json").write_text(json.dumps(meta))


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(tmp_path):
    path, _ = _victim(tmp_path)  # rock-paper-scissors: logits_net.0.weight is (4, 1)
    rewrite_tensor(path, ".agents.1.logits_net.0.weight", torch.zeros(4, 5))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "run").load_agents()
    assert str(error.value) == (f"checkpoint {str(path)!r}: tensor 'agents.1.logits_net.0.weight' has shape (4, 5) "
                                "in the file but the model expects (4, 1)")


def test_a_missing_or_unexpected_tensor_is_one_line(tmp_path):
    path, _ = _victim(tmp_path)
    with pytest.raises(CheckpointError, match="inconsistent: tensor '.agents.0.logits_net.0.bias' named in meta.json"):
        rewrite_tensor(path, ".agents.0.logits_net.0.bias", None)
        load_checkpoint(path)
    meta = json.loads((path / "meta.json").read_text())
    del meta["state"]["agents"][0]["logits_net.0.bias"]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"tensor 'agents\.0\.logits_net\.0\.bias' is missing from the file; "
                       r"the model expects one of shape \(4,\)$"):
        load_checkpoint(path).load_agents()
    path, _ = _victim(tmp_path / "second")
    meta = json.loads((path / "meta.json").read_text())
    meta["state"]["agents"][0]["extra"] = {"__tensor__": ".agents.0.extra"}
    (path / "meta.json").write_text(json.dumps(meta))
    rewrite_tensor(path, ".agents.0.extra", torch.zeros(3))
    with pytest.raises(CheckpointError, match=r"the file holds tensor 'agents\.0\.extra' of shape \(3,\), which "
                       "the model does not have$"):
        load_checkpoint(path).load_agents()


def test_a_rewritten_file_without_its_hash_fails_the_hash_check_first(tmp_path):
    path, _ = _victim(tmp_path)
    rewrite_tensor(path, ".agents.1.logits_net.0.weight", torch.zeros(4, 5), rehash=False)
    with pytest.raises(CheckpointError, match="is corrupted: tensors.safetensors does not match the sha256"):
        load_checkpoint(path)


def test_the_attack_victim_loader_names_the_tensor(tmp_path):
    from evals.attacks.victim import Victim

    path, _ = _victim(tmp_path)
    rewrite_tensor(path, ".agents.0.logits_net.2.weight", torch.zeros(2, 4))
    with pytest.raises(CheckpointError, match=r"tensor 'agents\.0\.logits_net\.2\.weight' has shape \(2, 4\) in "
                       r"the file but the model expects \(3, 4\)$"):
        Victim.from_checkpoint(path)
