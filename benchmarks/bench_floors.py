"""Where a PPO training iteration on sumo-pushers spends its time, against what its arithmetic needs (issue 15).

Issue 15 asks for PPO self-play training at >= 0.6x raw single-core physics on sumo-pushers (64 copies x 100
steps = 6,400 env steps per iteration). This prints, measured in this process on this machine:

1. the yardstick (raw single-core ``mj_step``) and the iteration time the target allows;
2. training as it runs (two env streams, both players' updates side by side): rollout and update per iteration;
3. the rollout of one stream's share (32 copies x 100 steps) on one thread: physics alone, the env layer, ``collect``;
4. one player's PPO update on one thread, both players' on the default threads (with the CPU time each player's
   update then takes: more than alone where the two cores slow each other), and inside one player's update:

   - the 16 minibatch gradients (policy and critic) as the update computes them: PPO's own ``_gradients_by_hand``
     (:mod:`ipo_robust.mlp_grad`) after the advantages' normalisation;
   - the same arithmetic compiled by ``torch.compile`` (inductor; needs a C++ compiler, else skipped), checked to
     give the same gradients: what a compiled update would buy;
   - the matrix products alone: the same ``mm``/``addmm`` shapes, nothing else (the floor of this arithmetic).

Every timing is the best of ``--repeats``. Run::

    MUJOCO_GL=disable python benchmarks/bench_floors.py
    MUJOCO_GL=disable python benchmarks/bench_floors.py --no-compile --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import torch  # noqa: E402
from bench_throughput import collect_rate, env_rate, raw_rate, train_rates  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust import host, mlp_grad  # noqa: E402
from ipo_robust.plugins.ppo import _gradients_by_hand, normalized  # noqa: E402
from ipo_robust.threads import WORKERS_VARIABLE  # noqa: E402


def best(function, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``function`` (after one untimed call), in seconds."""
    function()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return min(times)


def minibatch_gradients(policy_layers, critic_layers, log_std, mb: dict, clip: float, vf_coef: float):
    """PPO's per-minibatch gradients written as one function of torch ops (``torch.tanh``, which inductor fuses):
    the arithmetic of ``plugins/ppo.py``'s ``_gradients_by_hand``, for compiling."""
    rows = mb["obs"].shape[0]
    x, inputs = mb["obs"], []
    for k, (w, b) in enumerate(policy_layers):
        inputs.append(x)
        x = torch.addmm(b, x, w.t())
        x = torch.tanh(x) if k < len(policy_layers) - 1 else x
    z = (mb["act"] - x) * torch.exp(-log_std)
    logp = (-0.5 * z * z - log_std).sum(-1)
    adv = (mb["adv"] - mb["adv"].mean()) / (mb["adv"].std() + 1e-8)
    ratio = (logp - mb["logp_old"]).exp()
    unclipped, clipped = ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv
    grad_logp = torch.where(unclipped <= clipped, unclipped, 0.0) / -rows
    grads = [(grad_logp.unsqueeze(-1) * (z * z - 1)).sum(0)]
    dz = grad_logp.unsqueeze(-1) * z * torch.exp(-log_std)
    for k in range(len(policy_layers) - 1, -1, -1):
        grads += [dz.t().mm(inputs[k]), dz.sum(0)]
        dz = torch.ops.aten.tanh_backward(dz.mm(policy_layers[k][0]), inputs[k]) if k else dz
    x, inputs = mb["features"], []
    for k, (w, b) in enumerate(critic_layers):
        inputs.append(x)
        x = torch.addmm(b, x, w.t())
        x = torch.tanh(x) if k < len(critic_layers) - 1 else x
    dz = (vf_coef / rows * (x.squeeze(-1) - mb["ret"])).unsqueeze(-1)
    for k in range(len(critic_layers) - 1, -1, -1):
        grads += [dz.t().mm(inputs[k]), dz.sum(0)]
        dz = torch.ops.aten.tanh_backward(dz.mm(critic_layers[k][0]), inputs[k]) if k else dz
    return grads


def matmul_only(*networks):
    """The matrix products of a gradient through each ``(layers, rows)`` of ``networks`` (forward, weight
    gradients, input gradients but the first layer's), on the same shapes, and nothing else."""
    for layers, x in networks:
        inputs = []
        for w, b in layers:
            inputs.append(x)
            x = torch.addmm(b, x, w.t())
        dz = x
        for k in range(len(layers) - 1, -1, -1):
            dz.t().mm(inputs[k])
            dz = dz.mm(layers[k][0]) if k else dz


def player_cpu_seconds(optimizer, batch, repeats: int) -> float:
    """The least CPU time one player's update took (its thread's ``time.thread_time``) over ``repeats`` PPO steps
    with both players side by side: PPO's ``thread_map`` wrapped to time each item on the thread it runs on."""
    module = sys.modules[type(optimizer).__module__]
    original, seconds = module.thread_map, []

    def timed(function, items, threads=None):
        def run(item):
            began = time.thread_time()
            try:
                return function(item)
            finally:
                seconds.append(time.thread_time() - began)

        return original(run, items, threads)

    module.thread_map = timed
    try:
        for _ in range(repeats):
            optimizer.step(batch)
    finally:
        module.thread_map = original
    return min(seconds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile comparison")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    name, copies, steps, minibatches, epochs = "sumo-pushers", 64, 100, 4, 4
    samples = copies * steps
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {name}, {copies} copies x {steps} steps, "
          f"best of {args.repeats}")

    os.environ[WORKERS_VARIABLE] = "1"
    stream = ipo_robust.make_env(name, num_envs=copies // 2, seed=0)
    raw = max(raw_rate(stream, 4 * steps) for _ in range(args.repeats))
    budget = samples / (0.6 * raw)
    print(f"\n1. raw single-core physics {raw:.0f} steps/s; 0.6x raw allows {budget * 1e3:.0f} ms per iteration")

    os.environ.pop(WORKERS_VARIABLE)
    rate, rollout_share, _ = max(train_rates(name, "ppo", copies, 4, streams=2) for _ in range(args.repeats))
    iteration = samples / rate
    print(f"2. PPO training, 2 streams, default threads: {rate / raw:.2f}x raw; per iteration rollout "
          f"{iteration * rollout_share * 1e3:.0f} ms + update {iteration * (1 - rollout_share) * 1e3:.0f} ms")

    os.environ[WORKERS_VARIABLE] = "1"
    agents = ipo_robust.make_agents(stream, seed=0)
    share = copies // 2 * steps
    physics = share / raw
    layer = share / max(env_rate(stream, steps) for _ in range(args.repeats))
    collected = share / max(collect_rate(stream, agents, steps) for _ in range(args.repeats))
    print(f"3. one stream ({copies // 2} copies x {steps} steps), one thread: physics {physics * 1e3:.0f} ms, "
          f"env layer {layer * 1e3:.0f} ms, collect {collected * 1e3:.0f} ms "
          f"({(collected - physics) * 1e3:.0f} ms outside the physics)")

    env = ipo_robust.make_env(name, num_envs=copies, seed=0)
    agents = ipo_robust.make_agents(env, seed=0)
    batch = ipo_robust.collect(env, agents, steps, generator=torch.Generator().manual_seed(0))
    env.close()
    stream.close()
    update = {}
    for train in ("player1", "both"):
        os.environ[WORKERS_VARIABLE] = "1" if train == "player1" else str(os.cpu_count() or 1)
        optimizer = host.create("optimizer", "ppo", agents, lr=1e-3, train=train)
        update[train] = best(lambda opt=optimizer: opt.step(batch), args.repeats)
    both_cpu = player_cpu_seconds(optimizer, batch, args.repeats)

    agent, critic = agents[0], optimizer.critics[0]
    rows = samples // minibatches
    generator = torch.Generator().manual_seed(0)
    mb = {"obs": batch.obs1.reshape(samples, -1)[:rows], "act": batch.act1.reshape(samples, -1)[:rows],
          "logp_old": batch.logp1.reshape(samples)[:rows] + 0.1 * torch.randn(rows, generator=generator),
          "adv": torch.randn(rows, generator=generator), "ret": torch.randn(rows, generator=generator),
          "features": critic.features(batch.obs1.reshape(samples, -1)[:rows], batch.obs2.reshape(samples, -1)[:rows])}
    policy_layers, critic_layers = mlp_grad.linear_layers(agent.mean_net), mlp_grad.linear_layers(critic.net)
    weights = [[(linear.weight.detach(), linear.bias.detach()) for linear, _ in layers]
               for layers in (policy_layers, critic_layers)]
    log_std = agent.log_std.detach()
    config = host.create("optimizer", "ppo", agents).config
    count = epochs * minibatches

    def by_hand():  # PPO's own minibatch gradients (they write the agent's and critic's .grad), normalisation first
        for _ in range(count):
            _gradients_by_hand(agent, policy_layers, critic_layers, dict(mb, adv=normalized(mb["adv"])), config)

    hand = best(by_hand, args.repeats)
    networks = ((weights[0], mb["obs"]), (weights[1], mb["features"]))
    matmuls = best(lambda: [matmul_only(*networks) for _ in range(count)], args.repeats)
    compiled = None
    if not args.no_compile:
        try:
            function = torch.compile(minibatch_gradients, dynamic=False)
            eager = minibatch_gradients(*weights, log_std, mb, config.clip, config.vf_coef)
            for got, want in zip(function(*weights, log_std, mb, config.clip, config.vf_coef), eager, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
            compiled = best(lambda: [function(*weights, log_std, mb, config.clip, config.vf_coef)
                                     for _ in range(count)], args.repeats)
        except Exception as error:  # no C++ compiler, or an inductor failure: report it, keep the rest
            print(f"   (torch.compile skipped: {type(error).__name__}: {str(error).splitlines()[0][:120]})")
    print(f"4. one player's PPO update, one thread: {update['player1'] * 1e3:.0f} ms; both players on "
          f"{os.cpu_count()} threads: {update['both'] * 1e3:.0f} ms, each player's at least {both_cpu * 1e3:.0f} ms "
          "of CPU time")
    print(f"   its {count} minibatch gradients ({rows} rows): by hand {hand * 1e3:.0f} ms, "
          f"torch.compile {'-' if compiled is None else f'{compiled * 1e3:.0f} ms'}, "
          f"matrix products alone {matmuls * 1e3:.0f} ms")

    # ipo-vpg (critic = "value"): each player's critic takes critic_epochs full-batch regression steps per update
    features = critic.features(batch.obs1.reshape(samples, -1), batch.obs2.reshape(samples, -1))
    epochs_vpg = host.create("optimizer", "ipo-vpg", agents, critic="value").config.critic_epochs
    regression = best(lambda: [matmul_only((weights[1], features)) for _ in range(epochs_vpg)], args.repeats)
    vpg_budget = samples / (0.5 * raw) - iteration * rollout_share
    print(f"5. ipo-vpg: one critic's {epochs_vpg} full-batch regression steps, matrix products alone, one thread: "
          f"{regression * 1e3:.0f} ms per player; 0.5x raw leaves {vpg_budget * 1e3:.0f} ms per update after "
          f"this rollout")


if __name__ == "__main__":
    main()
