"""Perturbation plugins: registration, learned-location sampling and body choice, noise, dynamics."""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
import torch
from torch.distributions import Normal

import ipo_robust
from ipo_robust import host
from ipo_robust.envs.mujoco.perturbations import LearnedLocation, Perturbation, nearest_bodies, nearest_body
from ipo_robust.policies import GaussianMLPPolicy, StateDependentStdGaussianPolicy

NAMES = ["none", "body-force", "learned-location", "dynamics", "action-noise", "observation-noise"]


def test_all_perturbations_registered_and_build():
    registered = host.registered("perturbation")
    for name in NAMES:
        perturbation = registered[name]()
        assert isinstance(perturbation, Perturbation)
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, perturbation="learned-location", holder=1)
    assert env.action_spaces[0].shape == (2,) and env.action_spaces[1].shape == (8,)
    assert not np.isfinite(env.action_spaces[1].low[2:]).any()  # unbounded: the rollout never clips the sample


@pytest.mark.parametrize("name", NAMES)
def test_each_perturbation_is_seeded_deterministic(name):
    def run(seed):
        env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=seed, perturbation=name, holder=1, alpha=0.7)
        obs = [np.concatenate(env.reset(seed=seed), 1)]
        rng = np.random.default_rng(0)
        for _ in range(10):
            a2 = np.clip(rng.normal(size=(2, env.action_spaces[1].shape[0])), -1, 1)
            obs.append(np.concatenate(env.step(rng.uniform(-1, 1, (2, 2)), a2).obs, 1))
        return np.stack(obs)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def _policy_and_env(num_envs):
    """A learned-location holder whose perturbation log-std is centred on (-1, -0.5, -2) for the location,
    0 for the force, and varies with the observation (a strong head)."""
    env = ipo_robust.make_env("sumo-pushers", num_envs=num_envs, seed=0, perturbation="learned-location",
                              holder=1, alpha=1.0)
    _, holder_policy = ipo_robust.make_agents(env, seed=0, hidden=(8,))
    low, high = holder_policy.log_std_min, holder_policy.log_std_max
    centre = torch.tensor([-1.0, -0.5, -2.0, 0.0, 0.0, 0.0])
    with torch.no_grad():
        holder_policy.log_std.zero_()  # the pusher's own two motors
        holder_policy.log_std_head.bias.copy_(torch.atanh(2 * (centre - low) / (high - low) - 1))
        holder_policy.log_std_head.weight.mul_(30.0)
    return env, holder_policy


def test_learned_location_points_follow_the_policy_gaussian():
    n = 1500
    env, policy = _policy_and_env(n)
    obs = env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        dist = policy.distribution(torch.as_tensor(obs[1], dtype=torch.float32))
        action = dist.base_dist.loc + dist.base_dist.scale * torch.randn(dist.base_dist.loc.shape,
                                                                          generator=generator)
        action[:, :2] = action[:, :2].clamp(-1, 1)  # the pusher's own motors, as the rollout clips them
    root = env.body_ids[0][0]
    xpos = np.stack([d.xpos[root].copy() for d in env.datas])
    xmat = np.stack([d.xmat[root].reshape(3, 3).copy() for d in env.datas])
    env.step(np.zeros((n, 2)), action.double().numpy())
    points = env.perturbation.last_points
    local = np.einsum("nji,nj->ni", xmat, points - xpos)  # back into the victim's root frame
    mean = dist.base_dist.loc[:, 2:5].double().numpy()
    std = dist.base_dist.scale[:, 2:5].double().numpy()
    assert (std.std(0) > 0.002 * std.mean(0)).all()  # each point has its own spread: the std depends on the state
    z = (local - mean) / std
    assert np.abs(z.mean(0)).max() < 4 / np.sqrt(n)
    np.testing.assert_allclose(z.var(0), 1.0, atol=0.1)
    np.testing.assert_allclose(np.corrcoef(z.T) - np.eye(3), 0.0, atol=0.1)  # diagonal covariance


def test_learned_location_logprob_is_the_policy_gaussian():
    env, policy = _policy_and_env(8)
    agents = (ipo_robust.make_agents(env, seed=1, hidden=(8,))[0], policy)
    batch = ipo_robust.collect(env, agents, steps=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, std = policy.mean_net(batch.obs2), policy.log_std_at(batch.obs2).exp()
        reference = Normal(mean, std).log_prob(batch.act2).sum(-1)
        loc_part = Normal(mean[..., 2:5], std[..., 2:5]).log_prob(batch.act2[..., 2:5]).sum(-1)
    torch.testing.assert_close(batch.logp2, reference)
    assert torch.isfinite(loc_part).all()  # the location's log-density is a summand of the policy's


def test_a_learned_location_holder_outputs_the_covariance_of_its_perturbation():
    env = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0, perturbation="learned-location", holder=1)
    victim, holder = ipo_robust.make_agents(env, seed=0, hidden=(8,))
    assert type(victim) is GaussianMLPPolicy and victim.log_std.shape == (2,)
    assert isinstance(holder, StateDependentStdGaussianPolicy)
    assert holder.state_dependent_dims == (2, 3, 4, 5, 6, 7) and holder.free_dims == (0, 1)  # [x y z fx fy fz]
    obs = torch.as_tensor(env.reset(seed=0)[1], dtype=torch.float32)
    obs = torch.cat([obs, obs + torch.linspace(-1.0, 1.0, obs.shape[-1])])
    log_std = holder.log_std_at(obs)
    assert (log_std[:, 2:].std(0) > 0).all() and (log_std[:, :2] == holder.log_std).all()
    plain = ipo_robust.make_agents(env, seed=0, hidden=(8,), state_dependent_std=False)
    assert all(type(p) is GaussianMLPPolicy for p in plain) and plain[1].log_std.shape == (8,)
    both = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, perturbation="learned-location", holder="both")
    assert all(isinstance(p, StateDependentStdGaussianPolicy) for p in ipo_robust.make_agents(both, seed=0))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "learned-location"])
def test_other_perturbations_keep_the_plain_gaussian_bit_for_bit(name):
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, perturbation=name, holder=1)
    default = ipo_robust.make_agents(env, seed=3, hidden=(8,))
    plain = ipo_robust.make_agents(env, seed=3, hidden=(8,), state_dependent_std=False)
    for a, b in zip(default, plain, strict=True):
        assert type(a) is GaussianMLPPolicy and type(b) is GaussianMLPPolicy
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


_BODIES = """
<mujoco>
  <worldbody>
    <body name="root" pos="0 0 0"><freejoint/>
      <geom name="ball" type="sphere" size="0.2"/>
      <body name="arm" pos="1 0 0"><geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.1"/></body>
      <body name="block" pos="0 2 0"><geom type="box" size="0.3 0.2 0.1"/></body>
      <body name="drum" pos="0 -2 0" euler="90 0 0"><geom type="cylinder" size="0.25 0.4"/></body>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.mark.parametrize("point, body, where", [
    ((0.05, 0.0, 0.0), "root", (0.05, 0.0, 0.0)),        # inside the sphere: the point itself
    ((1.25, 0.3, 0.0), "arm", (1.25, 0.1, 0.0)),         # above the capsule: its surface below the point
    ((1.8, 0.0, 0.0), "arm", (1.6, 0.0, 0.0)),           # beyond the capsule's cap
    ((0.1, 2.05, 0.05), "block", (0.1, 2.05, 0.05)),      # inside the box
    ((0.0, 2.0, 1.0), "block", (0.0, 2.0, 0.1)),          # above the box: its top face
    ((0.0, -2.0, 0.9), "drum", (0.0, -2.0, 0.25)),        # above the lying cylinder: its curved surface
    ((0.0, -2.6, 0.0), "drum", (0.0, -2.4, 0.0)),         # off its end cap
    ((0.45, 0.0, 0.0), "root", (0.2, 0.0, 0.0)),          # between ball and arm, nearer the ball
])
def test_nearest_body_hand_built_cases(point, body, where):
    model = mujoco.MjModel.from_xml_string(_BODIES)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    bodies = np.arange(1, model.nbody)
    chosen, application, distance = nearest_body(model, data, np.array(point, dtype=float), bodies)
    assert mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, chosen) == body
    np.testing.assert_allclose(application, where, atol=1e-12)
    assert distance == pytest.approx(np.linalg.norm(np.subtract(point, where)), abs=1e-12)
    # the vectorised version, one copy
    chosen, application = nearest_bodies([model], [data], np.array([point], dtype=float), bodies)
    assert mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(chosen[0])) == body
    np.testing.assert_allclose(application[0], where, atol=1e-12)


_WITH_BARE_BODY = _BODIES.replace(
    '<body name="block"', '<body name="bare" pos="-1.5 0 0"><inertial pos="0 0 0" mass="1"/></body>\n'
                          '      <body name="block"')


@pytest.mark.parametrize("env_name", ["sumo-ants", "sumo-pushers", "rarl-hopper"])
def test_nearest_bodies_matches_nearest_body_in_every_copy(env_name):
    """Copies in different poses, points around the victim (inside, near and far): the vectorised search picks
    the body and point nearest_body picks, copy by copy."""
    env = ipo_robust.make_env(env_name, num_envs=6, seed=1)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(*[rng.uniform(np.maximum(s.low, -1), np.minimum(s.high, 1), size=(6,) + s.shape)
                   for s in env.action_spaces])
    bodies = env.body_ids[0]
    for scale in (0.05, 0.3, 1.5):
        root = np.stack([d.xipos[bodies[0]] for d in env.datas])
        points = root + scale * rng.standard_normal((6, 3))
        chosen, application = nearest_bodies(env.models, env.datas, points, bodies)
        for i in range(6):
            body, where, distance = nearest_body(env.models[i], env.datas[i], points[i], bodies)
            # two geoms meeting at a joint can be equally near up to rounding: then either is right, so the
            # check is the distance reached, and the point as nearest_body finds it on the chosen body
            assert np.linalg.norm(points[i] - application[i]) == pytest.approx(distance, rel=0, abs=1e-12)
            _, on_chosen, _ = nearest_body(env.models[i], env.datas[i], points[i], [chosen[i]])
            np.testing.assert_allclose(application[i], on_chosen, rtol=0, atol=1e-12)
            if chosen[i] == body:
                np.testing.assert_allclose(application[i], where, rtol=0, atol=1e-12)


def test_nearest_bodies_measures_a_body_without_geoms_by_its_centre_of_mass():
    model = mujoco.MjModel.from_xml_string(_WITH_BARE_BODY)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    bodies = np.arange(1, model.nbody)
    bare = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "bare")
    points = np.array([[-1.45, 0.0, 0.0], [0.05, 0.0, 0.0]])
    chosen, application = nearest_bodies([model, model], [data, data], points, bodies)
    assert chosen.tolist() == [bare, 1]
    np.testing.assert_allclose(application[0], data.xipos[bare], atol=1e-12)
    assert nearest_body(model, data, points[0], bodies)[0] == bare


def test_learned_location_maps_to_the_victims_body_in_its_root_frame():
    env = ipo_robust.make_env("sumo-ants", num_envs=1, seed=0, perturbation="learned-location", holder=1)
    env.reset(seed=0)
    perturbation: LearnedLocation = env.perturbation
    data = env.datas[0]
    torso = env.body_ids[0][0]
    command = perturbation.forces(env, np.array([[0.0, 0.0, 0.1, 0.0, 0.0, 1.0]]), victim=0)
    assert command.body[0, 0] == torso  # 0.1 m above the torso centre: inside the torso sphere
    np.testing.assert_allclose(command.point[0, 0], data.xpos[torso] + data.xmat[torso].reshape(3, 3) @ [0, 0, 0.1])
    far_leg = perturbation.forces(env, np.array([[0.6, 0.6, 0.0, 1.0, 0.0, 0.0]]), victim=0)
    assert env.body_name(far_leg.body[0, 0]).startswith("a0_") and far_leg.body[0, 0] != torso


def test_action_noise_changes_only_the_victims_actions():
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, perturbation="action-noise", holder=1, alpha=1.0)
    env.reset(seed=0)
    a1, a2 = np.full((2, 2), 0.2), np.full((2, 2), -0.2)
    env.step(a1, a2)
    ctrl = env.datas[0].ctrl.copy()
    assert not np.allclose(ctrl[:2], 0.2) and np.allclose(ctrl[2:], -0.2)
    env.set_superpower(1, 0.0)
    env.step(a1, a2)
    np.testing.assert_allclose(env.datas[0].ctrl, [0.2, 0.2, -0.2, -0.2])


def test_observation_noise_changes_only_the_victims_observation():
    quiet = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0)
    noisy = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, perturbation="observation-noise", holder=1,
                                alpha=1.0)
    q, n = quiet.reset(seed=0), noisy.reset(seed=0)
    assert not np.allclose(q[0], n[0])
    np.testing.assert_array_equal(q[1], n[1])


def test_dynamics_scales_victim_masses_per_episode_within_bounds():
    env = ipo_robust.make_env("sumo-ants", num_envs=3, seed=0, perturbation="dynamics", holder=1, alpha=0.5)
    env.reset(seed=0)
    nominal = env.model
    victim, holder = env.body_ids[0], env.body_ids[1]
    ratios = []
    for m in env.models:
        assert m is not nominal
        r = m.body_mass[victim] / nominal.body_mass[victim]
        assert np.allclose(r, r[0]) and 0.85 - 1e-12 <= r[0] <= 1.15 + 1e-12  # 1 +- alpha * 0.3
        np.testing.assert_array_equal(m.body_mass[holder], nominal.body_mass[holder])
        ratios.append(r[0])
    assert len(set(ratios)) == 3
    snapshot = copy.copy(env.models[0].body_mass)
    env.reset()
    assert not np.array_equal(env.models[0].body_mass, snapshot)  # a new draw per episode
