"""``best-response``: the exact best response to a victim in matrix games (one-shot or repeated) and in
iterated matrix games (an MDP over the memory-one states, solved by policy iteration on the exact
discounted values, or by backward induction over the episode's horizon).

Exploitability = the best-response value minus the value the victim's own partner (the pair's agent in
the attacker's seat) gets against the victim. Averaged over both seats this is NashConv / 2
(:mod:`ipo_robust.evals.exploitability`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ipo_robust.envs.matrix import IteratedMatrixGameEnv, MatrixGameEnv
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks.base import Attack, ControlConfig, _pair, _result, _seat_returns
from ipo_robust.evals.attacks.play import PolicyActor, TableActor, play_games
from ipo_robust.evals.attacks.victim import Victim
from ipo_robust.hyperparameters import hyperparameter, one_of


class BestResponse(Attack):
    """``best-response``: the exact best response in matrix and iterated matrix games (module docstring)."""

    name = "best-response"

    @dataclass
    class Config(ControlConfig):
        horizon: str = hyperparameter("infinite", one_of("infinite", "episode"),
                                      "iterated games: best response to the infinite-horizon discounted value "
                                      "(the LOLA objective) or to the value of the env's episode horizon")

    def check_env(self, env, env_name):
        """Only matrix games and iterated matrix games have the exact values a best response is computed from."""
        if not isinstance(env, IteratedMatrixGameEnv | MatrixGameEnv):
            raise ConfigError(f"attack 'best-response' needs a matrix game or an iterated matrix game (exact "
                              f"values); {env_name!r} is a {type(env).__name__}. Use 'ppo-adversary' for "
                              "a lower bound instead.")

    def _run(self, victim, seat, budget, games, seed):
        start = time.perf_counter()
        env = victim.make_env(self.config.num_envs, seed)
        try:
            self.check_env(env, victim.env_name)
        except ConfigError:
            env.close()
            raise
        if isinstance(env, IteratedMatrixGameEnv):
            actor, exact = self._iterated(env, victim, seat)
        else:
            actor, exact = self._matrix(env, victim, seat)
        generator = torch.Generator().manual_seed(seed)
        victim_actor = PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)
        R1, R2 = play_games(env, _pair(victim_actor, actor, seat), games, seed)
        env.close()
        attacker_returns, victim_returns = _seat_returns(R1, R2, seat)
        exploitability = exact["best_response_value"] - exact["partner_value"]
        result = _result(self.name, seat, budget, attacker_returns, victim_returns, exploitability, "exact", start,
                         exact)
        result.partner_return = float(exact["partner_value"])  # exact, as the exploitability is
        return result

    @staticmethod
    def _probabilities(policy: nn.Module, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            probs = policy.distribution(torch.as_tensor(obs)).probs
        return probs.detach().to(torch.float64).cpu().numpy()

    def _matrix(self, env, victim: Victim, seat: int):
        """One stage game, repeated ``horizon`` times with a constant observation: the stationary best
        response plays the stage best response every move; values are undiscounted episode sums."""
        a = 1 - seat
        obs = np.ones((1, env.observation_spaces[0].shape[0]))
        q = self._probabilities(victim.agents[seat], obs)[0]  # the victim's mixed strategy
        p = self._probabilities(victim.agents[a], obs)[0]  # the partner's, in the attacker's seat
        payoff = env.payoff1 if a == 0 else env.payoff2.T  # rows: the attacker's actions
        action_values = payoff @ q
        best = int(np.argmax(action_values))
        victim_payoff = env.payoff2 if a == 0 else env.payoff1.T  # rows: attacker actions, cols: victim's
        H = env.horizon
        exact = {"best_response_value": H * float(action_values[best]), "partner_value": H * float(p @ action_values),
                 "victim_value": H * float(victim_payoff[best] @ q), "best_response": [best]}
        return TableActor(np.array([best])), exact

    def _iterated(self, env, victim: Victim, seat: int):
        """Best response over the memory-one states: the victim's table q(y | s) makes the attacker's
        problem an MDP with states s, actions x, reward payoff_a(joint) and next state 1 + a1 n2 + a2."""
        a = 1 - seat
        S = env.n_states
        states = env.state_observations()
        q = self._probabilities(victim.agents[seat], states)  # (S, n_victim)
        p = self._probabilities(victim.agents[a], states)  # (S, n_attacker)
        n1, n2 = env.payoff1.shape
        payoff_a = env.payoff1 if a == 0 else env.payoff2.T  # (n_attacker, n_victim)
        n_att, n_vic = payoff_a.shape
        joint = (lambda x, y: 1 + x * n2 + y) if a == 0 else (lambda x, y: 1 + y * n2 + x)
        nxt = np.array([[joint(x, y) for y in range(n_vic)] for x in range(n_att)])  # (n_att, n_vic)
        gamma = env.gamma

        def q_values(V):  # Q(s, x) = sum_y q(y|s) [payoff_a(x, y) + gamma V(next(x, y))]
            return np.einsum("sy,xy->sx", q, payoff_a + gamma * V[nxt])

        def table_probs(choice):  # one-hot (S, n_att) table of a deterministic stationary policy
            return np.eye(n_att)[choice]

        def values(probs_attacker, horizon):
            pa, pv = (probs_attacker, q) if a == 0 else (q, probs_attacker)
            J1, J2 = env.exact_values(pa, pv, horizon=horizon)
            return (float(J1), float(J2)) if a == 0 else (float(J2), float(J1))

        if self.config.horizon == "infinite":
            if gamma >= 1.0:
                raise ConfigError("attack 'best-response': horizon='infinite' needs the env's gamma < 1, got "
                                  f"{gamma}; use horizon='episode'")
            choice = np.zeros(S, dtype=np.int64)
            for _ in range(1000):  # policy iteration: exact evaluation, greedy improvement, finitely many steps
                P = np.zeros((S, S))
                r = np.zeros(S)
                for s in range(S):
                    x = choice[s]
                    r[s] = q[s] @ payoff_a[x]
                    np.add.at(P[s], nxt[x], q[s])
                V = np.linalg.solve(np.eye(S) - gamma * P, r)
                Q = q_values(V)
                improved = Q[np.arange(S), choice] + 1e-12 < Q.max(axis=1)
                if not improved.any():
                    break
                choice = np.where(improved, Q.argmax(axis=1), choice)
            actor = TableActor(choice)
            br_value, victim_value = values(table_probs(choice), None)
            partner_value = values(p, None)[0]
            exact = {"best_response": choice.tolist()}
        else:
            H = env.horizon
            V = np.zeros(S)
            tables = []
            for _ in range(H):  # backward induction: tables[k] acts with k + 1 moves left
                Q = q_values(V)
                tables.append(Q.argmax(axis=1))
                V = Q.max(axis=1)
            table = np.array(tables[::-1])  # row t: the move with H - t moves left
            actor = TableActor(table, stationary=False)
            br_value = float(V[0])
            partner_value = values(p, H)[0]
            victim_value = self._victim_value_finite(env, table, q, nxt, payoff_a, a, gamma)
            exact = {"best_response": table.tolist()}
        exact.update(best_response_value=float(br_value), partner_value=float(partner_value),
                     victim_value=float(victim_value), horizon=self.config.horizon)
        return actor, exact

    @staticmethod
    def _victim_value_finite(env, table, q, nxt, payoff_a, a, gamma) -> float:
        """The victim's H-step value against the non-stationary best response (backward recursion)."""
        payoff_v = env.payoff2 if a == 0 else env.payoff1.T  # (n_att, n_vic): the victim's payoff
        S = q.shape[0]
        W = np.zeros(S)
        for t in reversed(range(table.shape[0])):
            x = table[t]  # (S,)
            W = np.array([q[s] @ (payoff_v[x[s]] + gamma * W[nxt[x[s]]]) for s in range(S)])
        return float(W[0])
