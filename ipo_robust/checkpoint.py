"""Checkpoints: tensors in safetensors, everything else in a JSON sidecar; nothing is ever unpickled.

A checkpoint is a directory ``ckpt-<iteration>/`` inside a run directory::

    run/
      latest                 # the name of the newest complete checkpoint (written last, atomically)
      ckpt-000010/
        tensors.safetensors  # every tensor: policy and critic weights, optimizer moments, RNG states
        meta.json            # format, iteration, config, seeds, versions, plugin names, sha256 of the tensors

Writing is atomic: both files go into a hidden temporary directory, are fsynced, and the directory is
renamed into place; only then is ``latest`` replaced (temp file + rename). A crash at any point leaves
the previous checkpoint and ``latest`` untouched. Old checkpoints beyond ``keep`` are renamed to a hidden
name before they are deleted, so no half-deleted checkpoint is left under a ``ckpt-*`` name. Loading
checks the format marker and the tensor file's SHA-256, and reads tensors with ``safetensors`` (no
pickle), so a corrupted or foreign file is refused with a one-line :class:`CheckpointError`.

Nested state (optimizer ``state_dict`` trees with tensors, ints, floats, strings, integer keys) is
flattened by :func:`flatten_state`: tensors go to the safetensors file under their path, the rest is
kept as JSON with references. :func:`unflatten_state` restores the exact tree.

Policies are rebuilt from a *spec* (class name among the project's policies, sizes) recorded in the
sidecar: :func:`policy_spec` / :func:`policy_from_spec`. No class is looked up by an arbitrary name.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ipo_robust.errors import IpoRobustError

FORMAT = "ipo-robust-checkpoint"
FORMAT_VERSION = 1
TENSORS = "tensors.safetensors"
META = "meta.json"
LATEST = "latest"


class CheckpointError(IpoRobustError):
    """A checkpoint that is missing, corrupted, foreign or of an unsupported version."""


# ----------------------------------------------------------------------------------- state trees
_TENSOR_REF = "__tensor__"
_INT_KEYS = "__int_keys__"
_TUPLE = "__tuple__"


def flatten_state(tree, prefix: str = "") -> tuple[object, dict[str, torch.Tensor]]:
    """Split a nested state into (JSON-able skeleton, {path: tensor}).

    Supported leaves: tensors, None, bool, int, float (NaN/inf included), str. Containers: dict with str
    or int keys, list, tuple. Anything else raises TypeError (it would need pickling).
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(node, path: str):
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {_TENSOR_REF: path}
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, dict):
            if all(isinstance(k, str) for k in node):
                return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
            if all(isinstance(k, int) and not isinstance(k, bool) for k in node):
                return {_INT_KEYS: [[k, walk(v, f"{path}.{k}")] for k, v in node.items()]}
            raise TypeError(f"state at {path or '<root>'}: dict keys must be all str or all int")
        if isinstance(node, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
        if isinstance(node, tuple):
            return {_TUPLE: [walk(v, f"{path}.{i}") for i, v in enumerate(node)]}
        raise TypeError(f"state at {path or '<root>'}: cannot store a {type(node).__name__} without pickling")

    skeleton = walk(tree, prefix)
    return skeleton, tensors


def unflatten_state(skeleton, tensors: dict[str, torch.Tensor]):
    """The inverse of :func:`flatten_state`."""

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {_TENSOR_REF}:
                key = node[_TENSOR_REF]
                if key not in tensors:
                    raise CheckpointError(f"checkpoint is inconsistent: tensor {key!r} named in {META} is missing")
                return tensors[key]
            if set(node) == {_INT_KEYS}:
                return {int(k): walk(v) for k, v in node[_INT_KEYS]}
            if set(node) == {_TUPLE}:
                return tuple(walk(v) for v in node[_TUPLE])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(skeleton)


# ------------------------------------------------------------------------------------- policies
def _mlp_hidden(net: nn.Sequential) -> list[int]:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    others = [m for m in net if not isinstance(m, nn.Linear)]
    if any(not isinstance(m, nn.Tanh) for m in others):
        raise TypeError("only the default Tanh MLP policies can be described by a spec")
    return [int(m.out_features) for m in linears[:-1]]


def policy_spec(policy: nn.Module) -> dict:
    """A JSON description of one of the project's policies, enough to rebuild it (weights aside)."""
    from ipo_robust.policies import (
        CategoricalMLPPolicy,
        GaussianMLPPolicy,
        StateDependentStdGaussianPolicy,
        TabularCategoricalPolicy,
    )

    dtype = str(next(policy.parameters()).dtype).removeprefix("torch.")
    if isinstance(policy, StateDependentStdGaussianPolicy):
        return {"class": "StateDependentStdGaussianPolicy", "obs_dim": policy.obs_dim, "act_dim": policy.act_dim,
                "hidden": _mlp_hidden(policy.mean_net), "state_dependent_dims": list(policy.state_dependent_dims),
                "log_std_min": policy.log_std_min, "log_std_max": policy.log_std_max, "dtype": dtype}
    if isinstance(policy, CategoricalMLPPolicy):
        return {"class": "CategoricalMLPPolicy", "obs_dim": policy.obs_dim, "n_actions": policy.n_actions,
                "hidden": _mlp_hidden(policy.logits_net), "dtype": dtype}
    if isinstance(policy, GaussianMLPPolicy):
        return {"class": "GaussianMLPPolicy", "obs_dim": policy.obs_dim, "act_dim": policy.act_dim,
                "hidden": _mlp_hidden(policy.mean_net), "dtype": dtype}
    if isinstance(policy, TabularCategoricalPolicy):
        return {"class": "TabularCategoricalPolicy", "n_actions": policy.n_actions, "n_states": policy.n_states,
                "dtype": dtype}
    raise TypeError(f"cannot checkpoint a policy of type {type(policy).__name__}: use the project's policies "
                    "(ipo_robust.policies) or save its state_dict yourself")


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def policy_from_spec(spec: dict) -> nn.Module:
    """A freshly initialised policy of the described class and sizes (load the weights afterwards)."""
    from ipo_robust.policies import (
        CategoricalMLPPolicy,
        GaussianMLPPolicy,
        StateDependentStdGaussianPolicy,
        TabularCategoricalPolicy,
    )

    try:
        kind, dtype = spec["class"], _DTYPES[spec.get("dtype", "float32")]
        if kind == "CategoricalMLPPolicy":
            policy = CategoricalMLPPolicy(int(spec["obs_dim"]), int(spec["n_actions"]), tuple(spec["hidden"]))
        elif kind == "GaussianMLPPolicy":
            policy = GaussianMLPPolicy(int(spec["obs_dim"]), int(spec["act_dim"]), tuple(spec["hidden"]))
        elif kind == "StateDependentStdGaussianPolicy":
            low, high = float(spec["log_std_min"]), float(spec["log_std_max"])
            policy = StateDependentStdGaussianPolicy(  # log_std_init only has to lie inside: weights are loaded
                int(spec["obs_dim"]), int(spec["act_dim"]), tuple(spec["state_dependent_dims"]),
                tuple(spec["hidden"]), log_std_init=(low + high) / 2, log_std_min=low, log_std_max=high)
        elif kind == "TabularCategoricalPolicy":
            policy = TabularCategoricalPolicy(int(spec["n_actions"]), int(spec["n_states"]))
        else:
            raise CheckpointError(f"checkpoint names an unknown policy class {kind!r}")
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint has a malformed policy spec {spec!r}: {error}") from None
    return policy.to(dtype)


# ----------------------------------------------------------------------------- checked loading
def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(int(n) for n in tensor.shape))


def check_shapes(loaded, expected, checkpoint: str | os.PathLike, prefix: str, exact: bool = True) -> None:
    """Refuse a state tree whose tensors do not fit the model's, with a one-line :class:`CheckpointError`.

    ``loaded`` comes from the checkpoint, ``expected`` is what the model holds (e.g. its ``state_dict()``);
    ``prefix`` is the tree's place in the checkpoint (``.agents.0``), so that the message names the tensor as
    the file does. A tensor whose shape differs is always refused; with ``exact`` a tensor missing from the
    file or one the model does not have is refused too (optimizer moments, absent before the first step, are
    compared with ``exact=False``).
    """
    where = f"checkpoint {str(checkpoint)!r}"
    _, have = flatten_state(loaded, prefix)
    _, want = flatten_state(expected, prefix)
    for key in want:  # in the model's order: the first layer that differs is reported
        if key in have and have[key].shape != want[key].shape:
            raise CheckpointError(f"{where}: tensor {key.lstrip('.')!r} has shape {_shape(have[key])} in the file "
                                  f"but the model expects {_shape(want[key])}")
    if not exact:
        return
    for key in sorted(want.keys() - have.keys()):
        raise CheckpointError(f"{where}: tensor {key.lstrip('.')!r} is missing from the file; the model expects "
                              f"one of shape {_shape(want[key])}")
    for key in sorted(have.keys() - want.keys()):
        raise CheckpointError(f"{where}: the file holds tensor {key.lstrip('.')!r} of shape {_shape(have[key])}, "
                              "which the model does not have")


def load_weights(module: nn.Module, weights, checkpoint: str | os.PathLike, prefix: str) -> nn.Module:
    """``module.load_state_dict(weights)`` after :func:`check_shapes` (names and shapes); returns ``module``."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r}: {prefix.lstrip('.')!r} holds no module weights")
    check_shapes(weights, module.state_dict(), checkpoint, prefix)
    module.load_state_dict(weights)
    return module


def load_state(target, state, checkpoint: str | os.PathLike, prefix: str) -> None:
    """``target.load_state_dict(state)`` for an object that rebuilds modules from its state (an optimizer
    with its critics and opponent model); a failure is a one-line :class:`CheckpointError`, naming the tensor
    and both shapes when a shape is what differs."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        try:
            expected = target.state_dict()  # the modules rebuilt before the failing load, at the model's sizes
        except Exception:  # noqa: BLE001 - a half-restored object: report the original error below
            expected = None
        if expected is not None:
            check_shapes(state, expected, checkpoint, prefix, exact=False)
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise CheckpointError(f"checkpoint {str(checkpoint)!r}: {prefix.lstrip('.')!r} does not fit this run's "
                              f"{type(target).__name__}: {reason}") from None
    check_moments(target, state, checkpoint, prefix)


def _torch_optimizers(obj, depth: int = 6, seen: set | None = None):
    """The ``torch.optim.Optimizer`` objects reachable from ``obj`` through attributes, lists, tuples and dict
    values (at most ``depth`` steps; modules, tensors and arrays are not entered)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0 or isinstance(obj, nn.Module | torch.Tensor | str | bytes | int | float):
        return
    seen.add(id(obj))
    if isinstance(obj, torch.optim.Optimizer):
        yield obj
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, list | tuple):
        children = list(obj)
    else:
        children = list(getattr(obj, "__dict__", {}).values())
    for child in children:
        yield from _torch_optimizers(child, depth - 1, seen)


def check_moments(target, state, checkpoint: str | os.PathLike, prefix: str) -> None:
    """After ``target`` loaded ``state``: every optimizer moment (Adam's ``exp_avg``, ...) has its parameter's
    shape, else a one-line :class:`CheckpointError` naming the tensor as the file does (torch's optimizers
    load moments of any shape and fail only at their next step)."""
    flat = None
    for optimizer in _torch_optimizers(target):
        index = 0
        for group in optimizer.param_groups:
            for param in group["params"]:
                for name, value in optimizer.state.get(param, {}).items():
                    if torch.is_tensor(value) and value.dim() and value.shape != param.shape:
                        if flat is None:
                            _, flat = flatten_state(state, prefix)
                        key = next((k for k, v in flat.items() if k.endswith(f".state.{index}.{name}")
                                    and tuple(v.shape) == tuple(value.shape)), f"{prefix}.state.{index}.{name}")
                        raise CheckpointError(f"checkpoint {str(checkpoint)!r}: tensor {key.lstrip('.')!r} has shape "
                                              f"{_shape(value)} in the file but its parameter has shape "
                                              f"{_shape(param)}")
                index += 1


# ------------------------------------------------------------------------------------ the files
def _versions() -> dict:
    import mujoco
    import numpy

    from ipo_robust import __version__

    return {"ipo_robust": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "mujoco": mujoco.__version__, "python": platform.python_version()}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_name(iteration: int) -> str:
    return f"ckpt-{int(iteration):06d}"


def save_checkpoint(run_dir: str | os.PathLike, iteration: int, state: dict, meta: dict,
                    keep: int | None = 3) -> Path:
    """Write ``state`` (a tree for :func:`flatten_state`) and ``meta`` (JSON) as checkpoint ``iteration``.

    Returns the checkpoint directory. ``keep``: how many of the newest checkpoints to keep (None: all).
    """
    from safetensors.torch import save as save_tensors

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    skeleton, tensors = flatten_state(state)
    payload = save_tensors(tensors) if tensors else save_tensors({"__empty__": torch.zeros(0)})
    sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION, "iteration": int(iteration),
               "sha256": hashlib.sha256(payload).hexdigest(), "versions": _versions(), **meta,
               "state": skeleton}
    text = json.dumps(sidecar, indent=1, allow_nan=True)
    final = run_dir / checkpoint_name(iteration)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=run_dir))
    try:
        for name, data in ((TENSORS, payload), (META, text.encode("utf-8"))):
            with open(temporary / name, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        _fsync_dir(temporary)
        if final.exists():  # re-writing the same iteration (e.g. after a resume): swap atomically
            old = run_dir / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(temporary, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, final)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    from ipo_robust.atomic import atomic_write_text

    atomic_write_text(run_dir / LATEST, final.name + "\n")
    prune_checkpoints(run_dir, final, keep)
    return final


def prune_checkpoints(run_dir: str | os.PathLike, newest: Path, keep: int | None) -> None:
    """Delete the checkpoints of ``run_dir`` older than ``newest`` but the ``keep - 1`` newest of them (None: keep
    all); checkpoints after ``newest`` are left alone. :func:`save_checkpoint` calls it after each checkpoint, and a
    resume again (a run killed before it had pruned, or resumed with a smaller ``run.keep``)."""
    if keep is None:
        return
    older = sorted(p for p in Path(run_dir).glob("ckpt-*") if p.is_dir() and p.name < Path(newest).name)
    for path in older[:max(len(older) - (keep - 1), 0)]:
        _remove_checkpoint(path)


def _remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint directory without ever leaving a half-deleted one under its name: it is renamed to a
    hidden name first (atomically), then removed, so a crash in between leaves only the hidden directory."""
    hidden = path.parent / f".{path.name}.deleted"
    shutil.rmtree(hidden, ignore_errors=True)  # left by an earlier crash
    try:
        os.replace(path, hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from a checkpoint directory, a run directory (its ``latest``) or a
    checkpoint's ``meta.json`` / ``tensors.safetensors`` file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r}: the path does not exist")
    if path.is_file():
        if path.name in (META, TENSORS):
            return path.parent
        raise CheckpointError(f"{str(path)!r} is not an ipo-robust checkpoint: expected a run directory or a "
                              f"checkpoint directory (with {META} and {TENSORS})")
    if (path / META).exists():
        return path
    latest = path / LATEST
    if latest.exists():
        name = latest.read_text(encoding="utf-8").strip()
        if not name.startswith("ckpt-") or "/" in name or not (path / name / META).exists():
            raise CheckpointError(f"{str(latest)!r} names {name!r}, which is not a checkpoint in that run")
        return path / name
    raise CheckpointError(f"{str(path)!r} holds no ipo-robust checkpoint (no {LATEST} file and no {META})")


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``meta`` (the sidecar), ``state`` (the restored tree), ``path``."""

    path: Path
    meta: dict
    state: dict

    @property
    def iteration(self) -> int:
        return int(self.meta["iteration"])

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    def make_env(self, num_envs: int = 1, seed: int | None = None):
        """The environment the agents were trained in (same name and options: perturbation and holder
        included, so the action spaces match), with ``num_envs`` copies; nobody holds the superpower."""
        from ipo_robust import make_env

        env_spec = self.meta.get("env")
        if not env_spec:
            raise CheckpointError(f"checkpoint {str(self.path)!r} records no environment")
        env = make_env(env_spec["name"], num_envs=num_envs, seed=seed, **env_spec.get("options", {}))
        if hasattr(env, "set_superpower"):
            env.set_superpower(None, 0.0)
        return env

    def load_agents(self) -> tuple[nn.Module, nn.Module]:
        """Both policies with their saved weights, in eval mode."""
        specs = self.meta.get("agents")
        weights = self.state.get("agents")
        if not specs or weights is None or len(specs) != 2 or len(weights) != 2:
            raise CheckpointError(f"checkpoint {str(self.path)!r} holds no pair of agents")
        agents = [load_weights(policy_from_spec(spec), state, self.path, f".agents.{i}").eval()
                  for i, (spec, state) in enumerate(zip(specs, weights, strict=True))]
        return agents[0], agents[1]


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and verify a checkpoint (see :func:`find_checkpoint` for what ``path`` may be)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    directory = find_checkpoint(path)
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{str(directory / META)!r} is not a readable checkpoint sidecar: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(directory)!r} is not an ipo-robust checkpoint (format marker missing)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(directory)!r} has format version {meta.get('format_version')!r}; "
                              f"this ipo-robust reads version {FORMAT_VERSION}")
    try:
        payload = (directory / TENSORS).read_bytes()
    except OSError as error:
        raise CheckpointError(f"checkpoint {str(directory)!r} has no readable {TENSORS}: {error}") from None
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {str(directory)!r} is corrupted: {TENSORS} does not match the "
                              f"sha256 recorded in {META}")
    try:
        tensors = load_tensors(payload)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {str(directory)!r}: cannot read {TENSORS}: {error}") from None
    state = unflatten_state(meta.get("state", {}), tensors)
    return Checkpoint(directory, meta, state)


def save_agents(run_dir: str | os.PathLike, agents, env_name: str, env_options: dict | None = None,
                iteration: int = 0, extra_meta: dict | None = None) -> Path:
    """Write a checkpoint holding only a pair of agents and the env they play (e.g. a hand-made victim)."""
    meta = {"env": {"name": env_name, "options": dict(env_options or {})},
            "agents": [policy_spec(a) for a in agents], **(extra_meta or {})}
    state = {"agents": [a.state_dict() for a in agents]}
    return save_checkpoint(run_dir, iteration, state, meta)
