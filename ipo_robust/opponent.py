"""Opponent models: how each player estimates the other's policy (seed sec. 5, IPO-OM, eq. 24).

Why an IPO update needs one. Player 1's CGD step is the Nash equilibrium of the local game *as player 1
sees it*, d1 = lr1 (I - lr1 lr2 D12 D21)^-1 (g1 + lr2 D12 g2), and every one of g1, D12, g2, D21
depends on the opponent's parameters theta2: D12 = d1 d2^T J1 contains player 2's score, and g2, D21
are the opponent's gradient and its response to player 1, which player 1 *anticipates*. Without
centralised training player 1 does not know theta2; it uses an estimate theta2_hat. So there are two
local games, one per player:

    view 1 (player 1's): g1, D12, g2, D21 at (theta1, theta2_hat)   ->  player 1 keeps d1 of its solution
    view 2 (player 2's): g1, D12, g2, D21 at (theta1_hat, theta2)   ->  player 2 keeps d2 of its solution

What is estimated from what (the score-function estimators of eqs. 12-13, one batch, collected by the
true policies): in view 1, player 1's scores s1 = grad log pi1(a1|o1; theta1) come from its own policy and
player 2's scores s2_hat = grad log pi2_hat(a2|o2; theta2_hat) from the *model*, evaluated at the actions
player 2 actually took; rewards and returns are the observed ones. So g1 = E[s1 G1] is the same in both
views (it needs no theta2: the samples already carry the opponent's behaviour); D12 = E[G1 s1 s2_hat^T ...],
g2 = E[s2_hat G2] and D21 = E[G2 s2_hat s1^T ...] go through the model. View 2 is the mirror image.
The model only has to be a *policy over the opponent's actions* with a flat parameter vector: its
parameter count may differ from the true policy's, because player 1 keeps only d1 (p1,) from its view
and discards its forecast of d2. With theta2_hat = theta2 (the ``oracle`` model) both views are the
ordinary sample local game.

The interface (a third party implements these two methods and registers a factory with
``register_opponent_models``; see docs/plugins.md, "Opponent models")::

    class OpponentModel:
        centralised = False                   # True: estimate() is handed the opponent's true policy
        def observe(self, batch, player) -> dict:   # learn from player's (obs, act) in the batch
        def estimate(self, player, true_policy) -> torch.nn.Module:   # the policy to use for player

``player`` is the player being modelled (1 or 2); one model object serves both views (player 2's model
of player 1 is ``player=1``). The optimizer calls ``observe`` for both players on each batch, then
``estimate``; it passes the true policy only to a model that declares ``centralised = True``, so a
decentralised model cannot read the opponent's parameters even by accident. The returned module must have
``distribution(obs)`` (like the project's policies) and must stay unchanged until the next ``observe``.

Built-ins (``plugins/opponent_models.py``): ``oracle`` (the true policy: centralised training) and ``mle``
(:class:`MaximumLikelihoodOpponent`, eq. 24).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ipo_robust.devices import relocate
from ipo_robust.errors import ConfigError
from ipo_robust.optim.views import (
    ModelledLocalGame,
    OpponentModel,
    check_player,
    modelled_local_game,
    player_view,
    resolve_opponent_model,
)

__all__ = ["MaximumLikelihoodOpponent", "ModelledLocalGame", "OpponentModel", "OracleOpponent",
           "modelled_local_game", "player_view", "resolve_opponent_model"]


class OracleOpponent(OpponentModel):
    """The true opponent policy (centralised training): theta_hat = theta."""

    centralised = True

    def observe(self, batch, player: int) -> dict:
        return {}

    def estimate(self, player: int, true_policy: nn.Module | None = None) -> nn.Module:
        if true_policy is None:
            raise ValueError("the 'oracle' opponent model needs the opponent's true policy (centralised training)")
        return true_policy


def _as_flat(x: torch.Tensor, event_dims: int) -> torch.Tensor:
    """(T, N, *event) -> (T N, *event)."""
    return x.reshape(-1, *x.shape[x.dim() - event_dims:]) if event_dims else x.reshape(-1)


class MaximumLikelihoodOpponent(OpponentModel):
    """IPO-OM, seed eq. (24): theta_hat_j = argmax sum_m log pi_j(a_j,m | o_j,m; theta_hat), fitted on the
    opponent's observed (observation, action) pairs of each batch.

    The model is built from what a player can observe, never from the opponent's module: the observation
    width of ``obs{player}`` and the action type of ``act{player}`` (integers: ``Categorical`` over
    ``n_actions`` choices, by default ``max(act) + 1`` of the first batch; floats: a diagonal Gaussian over
    ``act.shape[-1]`` dimensions). ``architecture`` chooses the family:

    - ``"mlp"``: :class:`~ipo_robust.policies.CategoricalMLPPolicy` / ``GaussianMLPPolicy`` with ``hidden``
      (the default of ``ipo_robust.make_agents``); ``"linear"``: the same with no hidden layer;
    - ``"tabular"``: :class:`~ipo_robust.policies.TabularCategoricalPolicy`, one state if the observation has
      width 1 (one-step matrix games), else one-hot states of the observation's width;
    - a callable ``architecture(obs_dim, action_space) -> policy`` (``action_space`` has ``n`` for
      discrete actions, ``shape`` for continuous ones): any policy module, e.g. a recurrent one.

    Fitting: ``epochs`` full-batch Adam steps (``lr``) on the mean negative log-likelihood per batch, with
    the module and Adam's moments kept from one batch to the next (warm start: the opponent moves little
    per iteration). The initial weights come from ``seed`` (the global RNG is left alone).
    """

    def __init__(self, architecture: str | Callable = "mlp", hidden: Sequence[int] = (64, 64), epochs: int = 50,
                 lr: float = 0.05, n_actions: int | None = None, seed: int = 0):
        if not callable(architecture) and architecture not in ("mlp", "linear", "tabular"):
            raise ConfigError(f"opponent model 'mle': architecture must be 'mlp', 'linear', 'tabular' or a "
                              f"callable (obs_dim, action_space) -> policy, got {architecture!r}")
        for name, value in (("epochs", epochs), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and name == "epochs"):
                raise ConfigError(f"opponent model 'mle': {name} must be an integer"
                                  f"{' > 0' if name == 'epochs' else ''}, got {value!r}")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ConfigError(f"opponent model 'mle': lr must be a number > 0, got {lr!r}")
        if n_actions is not None and (isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1):
            raise ConfigError(f"opponent model 'mle': n_actions must be a positive int or None, got {n_actions!r}")
        self.architecture, self.hidden, self.epochs, self.lr = architecture, tuple(hidden), epochs, float(lr)
        self.n_actions, self.seed = n_actions, seed
        self.policies: dict[int, nn.Module] = {}
        self.optimizers: dict[int, torch.optim.Optimizer] = {}
        self._sizes: dict[int, tuple[int, int]] = {}  # player -> (obs width, actions n or action dim)

    # -- construction from observables ---------------------------------------------------------------
    def _action_space(self, act: torch.Tensor):
        from ipo_robust.envs.base import Box, Discrete

        if act.is_floating_point():
            return Box(-float("inf"), float("inf"), shape=(int(act.shape[-1]),))
        n = self.n_actions if self.n_actions is not None else int(act.max()) + 1
        return Discrete(n)

    def build(self, obs: torch.Tensor, act: torch.Tensor) -> nn.Module:
        """A fresh model policy sized from one player's observations (T, N, d) and actions."""
        from ipo_robust.policies import (
            CategoricalMLPPolicy,
            GaussianMLPPolicy,
            TabularCategoricalPolicy,
            _is_discrete,
        )

        obs_dim, space = int(obs.shape[-1]), self._action_space(act)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if callable(self.architecture):
                policy = self.architecture(obs_dim, space)
            elif self.architecture == "tabular":
                if not _is_discrete(space):
                    raise ConfigError("opponent model 'mle': architecture='tabular' needs discrete actions")
                policy = TabularCategoricalPolicy(space.n, n_states=1 if obs_dim == 1 else obs_dim)
            else:
                hidden = self.hidden if self.architecture == "mlp" else ()
                policy = (CategoricalMLPPolicy(obs_dim, space.n, hidden) if _is_discrete(space)
                          else GaussianMLPPolicy(obs_dim, int(space.shape[0]), hidden))
        if not isinstance(policy, nn.Module) or not hasattr(policy, "distribution"):
            raise ConfigError("opponent model 'mle': architecture must return a torch.nn.Module with "
                              f"distribution(obs), got {type(policy).__name__}")
        return policy.to(obs.device, obs.dtype if obs.is_floating_point() else torch.get_default_dtype())

    # -- eq. (24) -----------------------------------------------------------------------------------
    def observe(self, batch, player: int) -> dict:
        check_player(player)
        obs, act = getattr(batch, f"obs{player}"), getattr(batch, f"act{player}")
        if player not in self.policies:
            self.policies[player] = self.build(obs, act)
            n = getattr(self.policies[player], "n_actions", None)
            self._sizes[player] = (int(obs.shape[-1]), int(n) if n is not None else int(act.shape[-1]))
            self.optimizers[player] = torch.optim.Adam(self.policies[player].parameters(), lr=self.lr)
        policy = self.policies[player]  # on the batches' device (a model loaded from a checkpoint is on the CPU)
        optimizer = self.optimizers[player] = relocate(policy, self.optimizers[player], obs.device)
        dtype = next(policy.parameters()).dtype
        obs = _as_flat(obs, 1).to(dtype)
        act = _as_flat(act, 1 if act.is_floating_point() else 0)
        act = act.to(dtype) if act.is_floating_point() else act
        if not act.is_floating_point() and int(act.max()) >= getattr(policy, "n_actions", int(act.max()) + 1):
            raise ValueError(f"opponent model 'mle': player {player} took action {int(act.max())} but the model "
                             f"has {policy.n_actions} actions (sized from the first batch); pass n_actions=")
        with torch.enable_grad():
            for _ in range(self.epochs):
                nll = -policy.distribution(obs).log_prob(act).mean()  # eq. (24), averaged over the samples
                optimizer.zero_grad()
                nll.backward()
                optimizer.step()
        return {f"opponent/nll{player}": float(nll.detach())}

    def state_dict(self) -> dict:
        """Each modelled player's sizes, weights and Adam moments (for checkpoints)."""
        state = {}
        for player, policy in self.policies.items():
            sample = next(policy.parameters())
            n = getattr(policy, "n_actions", None)
            state[player] = {"obs_dim": int(self._sizes[player][0]), "act": self._sizes[player][1],
                             "dtype": str(sample.dtype).removeprefix("torch."), "discrete": n is not None,
                             "weights": policy.state_dict(), "optimizer": self.optimizers[player].state_dict()}
        return state

    def load_state_dict(self, state: dict) -> None:
        for player, entry in state.items():
            dtype = getattr(torch, entry["dtype"])
            obs = torch.zeros(1, 1, entry["obs_dim"], dtype=dtype)
            act = (torch.full((1, 1), entry["act"] - 1, dtype=torch.int64) if entry["discrete"]
                   else torch.zeros(1, 1, entry["act"], dtype=dtype))
            self.policies[player] = self.build(obs, act)
            self._sizes[player] = (entry["obs_dim"], entry["act"])
            self.policies[player].load_state_dict(entry["weights"])
            self.optimizers[player] = torch.optim.Adam(self.policies[player].parameters(), lr=self.lr)
            self.optimizers[player].load_state_dict(entry["optimizer"])

    def estimate(self, player: int, true_policy: nn.Module | None = None) -> nn.Module:
        check_player(player)
        if player not in self.policies:
            raise ValueError(f"opponent model 'mle' has not observed player {player} yet: call observe(batch, "
                             f"{player}) first")
        return self.policies[player]
