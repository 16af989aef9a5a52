"""Superpower forces: exact wrench application, no persistence, the alpha * f_max bound."""

from __future__ import annotations

import copy
import math

import mujoco
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import ipo_robust
from ipo_robust.envs.mujoco.forces import clip_norm, write_point_force

# A free body with an off-centre geom (so xipos != xpos) and a hinged child: forces couple into
# translation, rotation and the joint.
_MODEL = """
<mujoco>
  <option gravity="0 0 -9.81"/>
  <worldbody>
    <body name="base" pos="0 0 1" euler="10 20 30">
      <freejoint/>
      <geom type="capsule" size="0.1 0.3" pos="0.1 0.05 0" euler="0 90 0" mass="2"/>
      <geom type="box" size="0.1 0.1 0.1" pos="-0.2 0 0.1" mass="0.5"/>
      <body name="arm" pos="0.4 0 0">
        <joint name="hinge" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.05" mass="0.7"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def _model_data():
    model = mujoco.MjModel.from_xml_string(_MODEL)
    data = mujoco.MjData(model)
    data.qvel[:] = np.linspace(-0.5, 0.5, model.nv)
    mujoco.mj_forward(model, data)
    return model, data


def _qacc(model, data):
    mujoco.mj_forward(model, data)
    return data.qacc.copy()


@pytest.mark.parametrize("body_name", ["base", "arm"])
def test_point_force_matches_mj_applyFT(body_name):
    model, data = _model_data()
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
    F, tau = np.array([3.0, -2.0, 5.0]), np.array([0.2, 0.1, -0.3])
    p = data.xipos[body] + np.array([0.3, -0.2, 0.15])  # off the centre of mass

    ours = copy.copy(data)
    write_point_force(ours, body, F, p, tau)
    reference = copy.copy(data)
    mujoco.mj_applyFT(model, reference, F, tau, p, body, reference.qfrc_applied)
    np.testing.assert_allclose(_qacc(model, ours), _qacc(model, reference), rtol=0, atol=1e-9)

    # The omitted-torque bug (xfrc_applied = (F, tau), no r x F) is caught by the same comparison.
    wrong = copy.copy(data)
    wrong.xfrc_applied[body] = np.concatenate([F, tau])
    assert np.abs(_qacc(model, wrong) - _qacc(model, reference)).max() > 1e-3


def test_env_step_matches_mj_applyFT_reference():
    """An env step with a commanded force equals substeps driven by mj_applyFT (force held over the
    control step, its point translating with the centre of mass, as RARL holds xfrc_applied)."""
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=3, holder=1, alpha=1.0)
    env.reset(seed=3)
    body = env.body_ids[0][0]
    F = np.array([[1.5, -2.0, 0.0], [0.0, 1.0, 0.0]])
    p = np.stack([d.xipos[body] + np.array([0.12, 0.05, 0.0]) for d in env.datas])
    a1, a2 = np.full((2, 2), 0.3), np.full((2, 2), -0.2)
    before = [copy.copy(d) for d in env.datas]
    env.command_forces(np.full(2, body), p, F)
    result = env.step(a1, a2)
    np.testing.assert_allclose(result.info["forces"]["force"][:, 0], F)
    for i, d in enumerate(before):
        m = env.model
        d.ctrl[:] = [0.3, 0.3, -0.2, -0.2]
        r = p[i] - d.xipos[body]
        for _ in range(env.n_substeps):
            point = d.xipos[body] + r
            d.qfrc_applied[:] = 0
            mujoco.mj_applyFT(m, d, F[i], np.zeros(3), point, body, d.qfrc_applied)
            mujoco.mj_step2(m, d)
            mujoco.mj_step1(m, d)
        np.testing.assert_allclose(env.datas[i].qpos, d.qpos, rtol=0, atol=1e-9)
        np.testing.assert_allclose(env.datas[i].qvel, d.qvel, rtol=0, atol=1e-9)


def test_forces_do_not_persist():
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, holder=1, alpha=1.0)
    env.reset(seed=0)
    body = env.body_ids[0][0]
    env.command_forces(np.array([body]), env.datas[0].xipos[body][None] + [0.1, 0.0, 0.0], [[0.0, 3.0, 0.0]])
    env.step(np.zeros((1, 2)), np.zeros((1, 2)))
    assert not env.datas[0].xfrc_applied.any()
    reference = copy.copy(env.datas[0])
    result = env.step(np.zeros((1, 2)), np.zeros((1, 2)))
    assert result.info["forces"]["body"].size == 0
    for _ in range(env.n_substeps):  # the next step runs with no external force at all
        mujoco.mj_step2(env.model, reference)
        mujoco.mj_step1(env.model, reference)
    np.testing.assert_array_equal(env.datas[0].qpos, reference.qpos)


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.0, 1.0), action=st.lists(_finite, min_size=6, max_size=6),
       pert=st.sampled_from(["learned-location", "body-force"]))
@example(alpha=1.4012495060038117e-161, action=[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], pert="learned-location")
@example(alpha=1e-200, action=[0.0, 0.0, 0.0, 1e-170, 1e-170, 0.0], pert="learned-location")
@example(alpha=5e-324, action=[1.0, 1.0, 0.0, 0.0, 0.0, 0.0], pert="body-force")  # a subnormal bound
def test_alpha_fmax_bound_holds_for_any_action(alpha, action, pert):
    env = _bound_env(pert)
    env.set_superpower(1, alpha)
    env.reset(seed=0)
    own = np.zeros((1, 2))
    extra = np.asarray(action)[None, :env.action_spaces[1].shape[0] - 2]
    if pert == "body-force":
        extra = np.clip(extra, -1, 1)
    result = env.step(own, np.concatenate([own, extra], axis=1))
    f = result.info["forces"]["force"]
    norms = np.hypot(np.hypot(f[..., 0], f[..., 1]), f[..., 2])  # no underflow for tiny alpha (1e-161 was caught)
    assert (norms <= alpha * env.f_max * (1 + 1e-12)).all()
    xfrc = np.abs(env.datas[0].xfrc_applied).max()
    assert xfrc == 0.0


_ENVS: dict = {}


def _bound_env(pert):
    if pert not in _ENVS:
        _ENVS[pert] = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, perturbation=pert, holder=1)
    return _ENVS[pert]


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.0, 1.0), force=st.lists(_finite, min_size=3, max_size=3),
       torque=st.lists(_finite, min_size=3, max_size=3))
@example(alpha=9.017897564204263e-161, force=[0.0, 0.0, 1.0], torque=[0.0, 0.0, 0.0])  # a bound whose square underflows
def test_commanded_forces_are_clipped(alpha, force, torque):
    env = _bound_env("none")
    env.set_superpower(1, alpha)
    env.reset(seed=0)
    body = env.body_ids[0][0]
    env.command_forces(np.array([body]), env.datas[0].xipos[body][None], [force], [torque])
    result = env.step(np.zeros((1, 2)), np.zeros((1, 2)))
    f = result.info["forces"]
    # measured with hypot: np.linalg.norm squares the entries, which underflow for a tiny alpha (found with
    # alpha = 9e-161: the squares' rounding put the measured norm 5e-6 above a bound the force met exactly)
    assert _norm3(f["force"]) <= alpha * env.f_max * (1 + 1e-12)
    assert _norm3(f["torque"]) <= alpha * env.torque_max * (1 + 1e-12)


def _norm3(v: np.ndarray) -> float:
    """The Euclidean norm of a 3-vector without squaring (no underflow at any scale)."""
    v = np.asarray(v, dtype=np.float64).reshape(3)
    return float(np.hypot(np.hypot(v[0], v[1]), v[2]))


def test_clip_norm_keeps_small_vectors():
    v = np.array([[0.3, 0.4, 0.0], [30.0, 40.0, 0.0]])
    np.testing.assert_allclose(clip_norm(v, 1.0), [[0.3, 0.4, 0.0], [0.6, 0.8, 0.0]])


@settings(max_examples=200, deadline=None)
@given(exponent=st.floats(-330.0, 10.0), vector=st.lists(st.floats(-1e300, 1e300), min_size=3, max_size=3))
@example(exponent=math.log10(4.594585653992961e-308), vector=[-1058.25626094, 10297.69955833, -24354.43001909])
def test_clip_norm_meets_its_bound_at_every_scale(exponent, vector):
    # a huge vector and a tiny bound make bound / |v| subnormal: scaling by that ratio overshot the bound
    bound = 10.0 ** exponent
    v = np.asarray(vector)[None]
    clipped = clip_norm(v, bound)
    assert np.hypot(np.hypot(*clipped[0, :2]), clipped[0, 2]) <= bound * (1 + 1e-12)
    if np.hypot(np.hypot(*v[0, :2]), v[0, 2]) <= bound and bound >= np.finfo(np.float64).tiny:
        np.testing.assert_array_equal(clipped, v)  # within the bound: untouched


def test_non_holder_never_applies_forces():
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, perturbation="learned-location", holder=1)
    env.reset(seed=0)
    push = np.concatenate([np.zeros((2, 2)), np.ones((2, 6))], axis=1)
    assert env.step(np.zeros((2, 2)), push).info["forces"]["body"].size == 2
    env.set_superpower(None, 1.0)
    assert env.step(np.zeros((2, 2)), push).info["forces"]["body"].size == 0
    with pytest.raises(ValueError, match="cannot hold the superpower"):
        env.set_superpower(0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        env.set_superpower(1, 1.5)
    with pytest.raises(ValueError, match="no agent holds"):
        env.command_forces("p0", np.zeros((2, 3)), np.ones((2, 3)))
    env.set_superpower(1, 1.0)
    with pytest.raises(ValueError, match="may only push"):
        env.command_forces("p1", np.zeros((2, 3)), np.ones((2, 3)))


def test_both_may_hold_and_switch_between_phases():
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, perturbation="body-force", holder="both")
    assert env.action_spaces[0].shape == env.action_spaces[1].shape == (4,)
    env.reset(seed=0)
    for holder, victim_body in ((0, "p1"), (1, "p0")):
        env.set_superpower(holder, 0.5)
        result = env.step(np.ones((1, 4)), np.ones((1, 4)))
        assert env.body_name(result.info["forces"]["body"][0, 0]) == victim_body
        assert np.linalg.norm(result.info["forces"]["force"]) == pytest.approx(0.5 * env.f_max)
