"""Batched two-agent MuJoCo games with superpower forces (``ipo_robust.envs.mujoco``).

- :mod:`.forces`: force commands, norm clipping, wrench application (``F``, ``tau + r x F`` at ``xipos``).
- :mod:`.base`: :class:`MujocoTwoAgentEnv`, N copies of one model, auto-reset, blow-up handling.
- :mod:`.perturbations`: the :class:`Perturbation` hooks and the built-in perturbations.
- :mod:`.sumo`: ``sumo-pushers`` and ``sumo-ants``; :mod:`.rarl`: ``rarl-hopper/cheetah/walker``;
  :mod:`.soccer`: ``soccer-1v1`` (dm_control locomotion soccer, BOXHEAD walkers).
- :mod:`.rendering`: offscreen frames with force arrows, GIF encoding (``ipo-robust render``).

Importing this package does not import dm_control (the RARL hosts import it on first use).
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"

__all__ = ["ASSETS"]
