"""MuJoCo two-agent envs: protocol, sumo rules, determinism, blow-ups, invalid actions, smoke training."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

import ipo_robust
import ipo_robust.errors

FAST_ENVS = ["sumo-pushers", "sumo-ants", "rarl-hopper", "rarl-cheetah", "rarl-walker"]


def _random_actions(env, rng):
    acts = []
    for space in env.action_spaces:
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        acts.append(rng.uniform(low, high, size=(env.num_envs, *space.shape)))
    return acts


def _trajectory(name, seed, steps=20, num_envs=3, **options):
    env = ipo_robust.make_env(name, num_envs=num_envs, seed=seed, **options)
    rng = np.random.default_rng(123)
    out = [np.concatenate([*env.reset(seed=seed), np.zeros((num_envs, 2))], axis=1)]
    for _ in range(steps):
        result = env.step(*_random_actions(env, rng))
        out.append(np.concatenate([*result.obs, np.stack(result.rewards, 1)], axis=1))
    return np.stack(out)


@pytest.mark.parametrize("name", FAST_ENVS)
def test_same_seed_same_trajectory_different_seed_differs(name):
    options = {"perturbation": "learned-location", "holder": 1, "alpha": 0.5}
    a = _trajectory(name, seed=7, **options)
    b = _trajectory(name, seed=7, **options)
    c = _trajectory(name, seed=8, **options)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)  # bitwise
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", FAST_ENVS)
def test_spaces_and_zero_sum(name):
    env = ipo_robust.make_env(name, num_envs=2, seed=0)
    obs = env.reset(seed=0)
    for i in (0, 1):
        assert obs[i].shape == (2, *env.observation_spaces[i].shape)
    result = env.step(*_random_actions(env, np.random.default_rng(0)))
    np.testing.assert_array_equal(result.rewards[0], -result.rewards[1])
    assert result.info["physics_blowups"].shape == (2,)


def test_sumo_win_loss_tie_and_shaping():
    env = ipo_robust.make_env("sumo-pushers", num_envs=3, seed=0, shaping=0.5)
    env.reset(seed=0)
    env.datas[0].qpos[3] = 1.5  # agent 2 outside the ring: agent 1 wins
    env.datas[1].qpos[0] = -1.5  # agent 1 outside: agent 2 wins
    env.datas[2].qpos[0], env.datas[2].qpos[3] = -1.5, 1.5  # both out: tie
    result = env.step(np.zeros((3, 2)), np.zeros((3, 2)))
    assert result.terminated.all()
    np.testing.assert_allclose(result.rewards[0], [1.0 + 0.5 * (1.5 - 0.45) / 1, -1.0 - 0.5 * (1.5 - 0.45), 0.0],
                               atol=0.1)
    env.set_shaping(0.0)
    env.datas[0].qpos[3] = 1.5
    assert env.step(np.zeros((3, 2)), np.zeros((3, 2))).rewards[0][0] == 1.0
    with pytest.raises(ValueError, match="shaping"):
        env.set_shaping(-1.0)


def test_blowup_ends_only_that_episode_and_is_counted():
    clean = ipo_robust.make_env("sumo-pushers", num_envs=3, seed=1)
    broken = ipo_robust.make_env("sumo-pushers", num_envs=3, seed=1)
    clean.reset(seed=1)
    broken.reset(seed=1)
    broken.datas[1].qvel[0] = np.nan  # a blow-up in row 1
    actions = (np.full((3, 2), 0.5), np.full((3, 2), -0.5))
    r_clean, r_broken = clean.step(*actions), broken.step(*actions)
    np.testing.assert_array_equal(r_broken.info["physics_blowups"], [0, 1, 0])
    assert r_broken.terminated.tolist() == [False, True, False]
    assert broken.blowup_count == 1
    for i in (0, 1):
        assert np.isfinite(r_broken.obs[i]).all() and np.isfinite(r_broken.info["final_obs"][i]).all()
        np.testing.assert_array_equal(r_broken.obs[i][[0, 2]], r_clean.obs[i][[0, 2]])
    assert r_broken.rewards[0][1] == 0.0
    r_next = broken.step(*actions)  # the reset row goes on normally
    assert r_next.info["physics_blowups"].sum() == 0


def test_huge_acceleration_warning_is_a_blowup():
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0)
    env.reset(seed=0)
    env.datas[0].qvel[:] = 1e12  # MuJoCo flags huge values (mjWARN_BADQVEL / BADQACC) and resets the data
    result = env.step(np.zeros((2, 2)), np.zeros((2, 2)))
    assert result.info["physics_blowups"].tolist() == [1, 0]


@pytest.mark.parametrize("bad, match", [
    (np.full((2, 2), np.nan), "finite"),
    (np.zeros((2, 3)), "shape"),
    (np.zeros((3, 2)), "shape"),
])
def test_invalid_actions_raise(bad, match):
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(bad, np.zeros((2, 2)))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="holder"):
        ipo_robust.make_env("sumo-pushers", holder=2)
    with pytest.raises(ValueError, match="alpha"):
        ipo_robust.make_env("sumo-pushers", holder=1, alpha=-0.1)


def test_ipo_vpg_smoke_training_on_sumo_pushers():
    env = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0, perturbation="learned-location", holder=1,
                              alpha=0.5, shaping=0.1, max_episode_steps=20)
    agents = ipo_robust.make_agents(env, seed=0, hidden=(16,))
    optimizer = ipo_robust.make_optimizer("ipo-vpg", agents, lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = ipo_robust.collect(env, agents, steps=20, generator=generator)
        info = optimizer.step(batch)
        assert np.isfinite(info["optim/step_norm1"]) and np.isfinite(info["optim/step_norm2"])
    assert batch.act2.shape[-1] == 2 + 6  # own actions + the learned-location action


@pytest.mark.parametrize("name, domain, task", [("rarl-hopper", "hopper", "hop"), ("rarl-cheetah", "cheetah", "run"),
                                                ("rarl-walker", "walker", "walk")])
def test_rarl_hosts_match_dm_control_suite(name, domain, task):
    """Observation and reward equal the suite task's at the same state; the adversary gets minus it."""
    from dm_control import suite

    env = ipo_robust.make_env(name, num_envs=1, seed=0)
    env.reset(seed=0)
    suite_env = suite.load(domain, task)
    physics = suite_env.physics
    rng = np.random.default_rng(0)
    for _ in range(5):
        result = env.step(*_random_actions(env, rng))
        data = env.datas[0]
        with physics.reset_context():
            physics.data.qpos[:] = data.qpos
            physics.data.qvel[:] = data.qvel
        expected = np.concatenate([np.ravel(v) for v in suite_env.task.get_observation(physics).values()])
        n = expected.size - (2 if domain == "hopper" else 0)  # hopper's touch sensors lag one substep in both
        np.testing.assert_allclose(result.obs[0][0, :n], expected[:n], atol=1e-12)
        assert result.rewards[0][0] == pytest.approx(suite_env.task.get_reward(physics), abs=1e-12)
        assert result.rewards[1][0] == -result.rewards[0][0]


def test_rarl_adversary_pushes_rarl_bodies():
    expected = {"rarl-hopper": ["foot"], "rarl-cheetah": ["torso", "bfoot", "ffoot"],
                "rarl-walker": ["right_foot", "left_foot"]}
    for name, bodies in expected.items():
        env = ipo_robust.make_env(name, num_envs=1, seed=0)
        assert env.holder == 1 and env.action_spaces[1].shape == (2 * len(bodies),)
        env.reset(seed=0)
        result = env.step(np.zeros(env.action_spaces[0].shape)[None], np.ones(env.action_spaces[1].shape)[None])
        assert [env.body_name(b) for b in result.info["forces"]["body"][0]] == bodies
        np.testing.assert_allclose(result.info["forces"]["force"][0, :, 1], 0.0)  # sagittal plane (x, z)
        with pytest.raises(ValueError, match="cannot hold"):
            env.set_superpower(0, 1.0)


def test_soccer_1v1_two_agent_protocol_and_superpower():
    env = ipo_robust.make_env("soccer-1v1", num_envs=2, seed=0, perturbation="learned-location", holder=1,
                              alpha=0.5, max_episode_steps=5)
    assert env.action_spaces[0].shape == (3,) and env.action_spaces[1].shape == (3 + 6,)
    obs = env.reset(seed=0)
    assert obs[0].shape == (2, env.observation_spaces[0].shape[0])
    rng = np.random.default_rng(0)
    for _ in range(5):
        result = env.step(*_random_actions(env, rng))
        np.testing.assert_array_equal(result.rewards[0], -result.rewards[1])
        bodies = result.info["forces"]["body"].ravel()
        assert all(env.body_name(b).startswith("home0/") for b in bodies)  # the holder (away) pushes home
        assert (np.linalg.norm(result.info["forces"]["force"], axis=-1) <= 0.5 * env.f_max + 1e-9).all()
        assert not any(d.xfrc_applied.any() for d in env.datas)
    assert result.truncated.all()
    first = _trajectory("soccer-1v1", seed=3, steps=3, num_envs=1)
    np.testing.assert_array_equal(first, _trajectory("soccer-1v1", seed=3, steps=3, num_envs=1))
    assert not np.array_equal(first, _trajectory("soccer-1v1", seed=4, steps=3, num_envs=1))


class _SceneOnlyRenderer:
    """A stand-in for mujoco.Renderer without OpenGL: builds the real MjvScene, 'renders' a blank image."""

    def __init__(self, model, height=24, width=32):
        self.model, self.height, self.width = model, height, width
        self.scene = mujoco.MjvScene(model, maxgeom=1000)
        self.option = mujoco.MjvOption()
        self.arrows_per_frame = []

    def update_scene(self, data, camera):
        mujoco.mjv_updateScene(self.model, data, self.option, None, camera, mujoco.mjtCatBit.mjCAT_ALL, self.scene)

    def render(self):
        arrows = [self.scene.geoms[i] for i in range(self.scene.ngeom)
                  if self.scene.geoms[i].type == mujoco.mjtGeom.mjGEOM_ARROW]
        self.arrows_per_frame.append([(g.pos.copy(), g.size.copy()) for g in arrows])
        frame = len(self.arrows_per_frame)  # distinct frames (a GIF merges identical ones)
        return np.full((self.height, self.width, 3), (10 * len(arrows) + 40 * frame) % 256, dtype=np.uint8)


def test_force_arrows_end_at_application_points():
    from ipo_robust.envs.mujoco.rendering import add_arrows, force_arrows

    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, holder=1)
    env.reset(seed=0)
    body = env.body_ids[0][0]
    point = env.datas[0].xipos[body] + [0.1, 0.0, 0.0]
    env.command_forces(np.array([body]), point[None], [[0.0, env.f_max, 0.0]])
    forces = env.step(np.zeros((1, 2)), np.zeros((1, 2))).info["forces"]
    (start, end), = force_arrows(env, forces, arrow_length=0.5)
    np.testing.assert_allclose(end, point)
    np.testing.assert_allclose(start, point - [0.0, 0.5, 0.0])
    renderer = _SceneOnlyRenderer(env.model)
    renderer.update_scene(env.datas[0], mujoco.MjvCamera())
    before = renderer.scene.ngeom
    assert add_arrows(renderer.scene, [(start, end)]) == 1
    geom = renderer.scene.geoms[before]
    assert geom.type == mujoco.mjtGeom.mjGEOM_ARROW
    np.testing.assert_allclose(geom.pos, start, atol=1e-6)  # float32 scene
    assert geom.size[2] == pytest.approx(0.5, abs=1e-6)


def test_render_command_writes_a_gif(tmp_path):
    from PIL import Image

    from ipo_robust.cli import build_parser
    from ipo_robust.commands.render import run_render

    out = tmp_path / "episode.gif"
    args = build_parser().parse_args(["render", "sumo-pushers", "--out", str(out), "--steps", "4",
                                      "--perturbation", "body-force", "--holder", "2"])
    env_model = ipo_robust.make_env("sumo-pushers").model
    renderer = _SceneOnlyRenderer(env_model)
    assert run_render(args, renderer=renderer) == 0
    assert [len(a) for a in renderer.arrows_per_frame] == [1, 1, 1, 1]  # one push per step, drawn
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)
    bad = build_parser().parse_args(["render", "sumo-pushers", "--out", str(tmp_path / "x.avi")])
    with pytest.raises(ipo_robust.errors.ConfigError, match="gif"):
        run_render(bad, renderer=renderer)


def test_render_command_plays_a_checkpoint_to_mp4(tmp_path):
    """--checkpoint plays the trained agents in the env they were trained in; .mp4 through imageio-ffmpeg."""
    import imageio.v3 as iio

    from ipo_robust.checkpoint import save_agents
    from ipo_robust.cli import build_parser
    from ipo_robust.commands.render import run_render

    options = {"perturbation": "learned-location", "holder": 1}
    env = ipo_robust.make_env("sumo-pushers", **options)
    agents = ipo_robust.make_agents(env, seed=0, hidden=(8,))
    save_agents(tmp_path / "run", agents, "sumo-pushers", options)
    out = tmp_path / "episode.mp4"
    args = build_parser().parse_args(["render", "sumo-pushers", "--checkpoint", str(tmp_path / "run"), "--out",
                                      str(out), "--steps", "5", "--holder", "2"])
    renderer = _SceneOnlyRenderer(env.model, height=32, width=48)
    assert run_render(args, renderer=renderer) == 0
    assert [len(a) for a in renderer.arrows_per_frame] == [1] * 5  # the trained holder pushes every step
    assert iio.imread(out).shape[0] == 5  # five decoded frames
    wrong = build_parser().parse_args(["render", "rarl-hopper", "--checkpoint", str(tmp_path / "run"),
                                       "--out", str(tmp_path / "x.gif")])
    with pytest.raises(ipo_robust.errors.ConfigError, match="trained on 'sumo-pushers'"):
        run_render(wrong, renderer=renderer)


def test_sumo_shaping_is_potential_based_and_telescopes():
    """Summed over an episode the shaping is shaping * (Phi_end - Phi_start): no pay for episode length."""
    weight = 0.7
    shaped = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=5, shaping=weight, max_episode_steps=30)
    sparse = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=5, shaping=0.0, max_episode_steps=30)

    def potential(env):
        d = np.array([[np.hypot(*env.datas[i].xpos[b][:2]) for b in (env.body_ids[0][0], env.body_ids[1][0])]
                      for i in range(env.num_envs)])
        return (d[:, 1] - d[:, 0]) / env.ring_radius

    shaped.reset(seed=5)
    sparse.reset(seed=5)
    start, total, sparse_total = potential(shaped), np.zeros(4), np.zeros(4)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a1, a2 = rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, (4, 2))
        total += shaped.step(a1, a2).rewards[0]
        sparse_total += sparse.step(a1, a2).rewards[0]
    np.testing.assert_allclose(total - sparse_total, weight * (potential(shaped) - start), atol=1e-12)
