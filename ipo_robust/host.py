"""The plugin host: finds plugins through entry points, loads them in isolation, keeps the registries.

Built-in plugins and third-party plugins take the same path: each is an entry point in the
``ipo_robust`` group whose object carries ``@hookimpl`` functions (see :mod:`ipo_robust.hookspecs`).

Loading is fault-isolated. A plugin that fails to import, implements a hook that does not exist (a
misspelling), has a hook with a wrong signature, raises inside its hook, registers an invalid name, or
registers a name another plugin already took is recorded as *failed* with its reason, none of its
registrations are kept, and every other plugin still loads. Built-ins load first, so a third party can
never take over a built-in name.

Plugins can be disabled by entry-point name with the ``IPO_ROBUST_DISABLE_PLUGINS`` environment
variable (comma-separated) or ``ipo-robust --disable-plugin NAME``. A name that matches no installed plugin
is refused; resolving a name that only a disabled plugin provides says so, and by what it was disabled.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pluggy

from ipo_robust import hookspecs
from ipo_robust.errors import ConfigError, DisabledPluginError, UnknownNameError, did_you_mean

ENTRY_POINT_GROUP = "ipo_robust"
DISABLE_ENV_VAR = "IPO_ROBUST_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "ipo-robust"
KINDS = hookspecs.KINDS
_NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass
class PluginRecord:
    """What the host knows about one plugin (one entry point, or one object passed in)."""

    name: str
    distribution: str | None
    version: str | None
    value: str
    status: str = "ok"  # "ok" | "failed" | "disabled"
    reason: str | None = None
    registers: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "plugin": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "value": self.value,
            "status": self.status,
            "reason": self.reason,
            "registers": [f"{kind}:{name}" for kind, name in self.registers],
        }


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    factory: Callable
    plugin: str


class PluginFailure(Exception):
    """Why one plugin was skipped (internal: turned into a failed PluginRecord)."""


class Host:
    """One loaded set of plugins and the registries they filled.

    :param disabled: entry-point names not to load, as ``--disable-plugin`` gives them (added to those in
        ``IPO_ROBUST_DISABLE_PLUGINS``); a name that matches no entry point raises :class:`ConfigError`.
    :param entry_points: the entry points to load; default: the installed ``ipo_robust`` group.
    :param plugins: extra ``(name, object)`` plugins registered after the entry points (notebooks, tests).
    """

    def __init__(
        self,
        disabled: Iterable[str] = (),
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
    ):
        # how each disabled name was switched off, as the user wrote it (the flag wins over the variable)
        self.disabled_by: dict[str, str] = {name: f"{DISABLE_ENV_VAR} entry {name!r}"
                                            for name in disabled_from_environment()}
        self.disabled_by.update({name: f"--disable-plugin {name}" for name in disabled})
        self.disabled = set(self.disabled_by)
        self._disabled_entry_points: dict[str, metadata.EntryPoint] = {}
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.plugin_manager.add_hookspecs(hookspecs)
        self.plugins: list[PluginRecord] = []
        self._registry: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        entry_points = sorted(entry_points, key=_load_order)
        known = sorted({entry_point.name for entry_point in entry_points})
        unknown = sorted(self.disabled - set(known))
        if unknown:
            name = unknown[0]
            raise ConfigError(f"{self.disabled_by[name]} matches no installed plugin{did_you_mean(name, known)}")
        for entry_point in entry_points:
            self._load_entry_point(entry_point)
        for name, plugin in plugins:
            record = PluginRecord(name, None, None, repr(plugin))
            self.plugins.append(record)
            self._load(record, lambda plugin=plugin: plugin)

    # -- loading -------------------------------------------------------------------------------
    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        dist = entry_point.dist
        record = PluginRecord(
            name=entry_point.name,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
            value=entry_point.value,
        )
        self.plugins.append(record)
        if entry_point.name in self.disabled:
            record.status, record.reason = "disabled", f"disabled by {self.disabled_by[entry_point.name]}"
            self._disabled_entry_points[entry_point.name] = entry_point
            return
        self._load(record, entry_point.load)

    def _load(self, record: PluginRecord, load: Callable[[], object]) -> None:
        try:
            plugin = load()
        except Exception as error:  # a broken plugin must never take the host down
            self._fail(record, f"import failed: {type(error).__name__}: {error}")
            return
        plugin_key = f"{record.distribution or 'local'}:{record.name}"
        try:
            self.plugin_manager.register(plugin, name=plugin_key)
        except Exception as error:  # pluggy's PluginValidationError, or the same object registered twice
            self._fail(record, f"invalid plugin: {error}")
            return
        try:
            self._check_hook_names(plugin)
            pending = self._call_registration_hooks(plugin, record.name)
        except PluginFailure as failure:
            self.plugin_manager.unregister(plugin)
            self._fail(record, str(failure))
            return
        for registration in pending:
            self._registry[registration.kind][registration.name] = registration
            record.registers.append((registration.kind, registration.name))

    def _check_hook_names(self, plugin: object) -> None:
        for caller in self.plugin_manager.get_hookcallers(plugin) or []:
            if caller.spec is None:
                message = f"unknown hook {caller.name!r}"
                close = difflib.get_close_matches(caller.name, list(hookspecs.HOOK_KINDS), n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
                raise PluginFailure(message)

    def _call_registration_hooks(self, plugin: object, plugin_name: str) -> list[Registration]:
        pending: list[Registration] = []
        for hook_name, kind in hookspecs.HOOK_KINDS.items():
            caller = getattr(self.plugin_manager.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue

                def register(name, factory, kind=kind):
                    pending.append(self._validate(kind, name, factory, plugin_name, pending))

                try:
                    impl.function(**({"register": register} if "register" in impl.argnames else {}))
                except PluginFailure:
                    raise
                except Exception as error:
                    raise PluginFailure(f"{hook_name} raised {type(error).__name__}: {error}") from error
        return pending

    def _validate(self, kind, name, factory, plugin_name, pending) -> Registration:
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            raise PluginFailure(f"{kind} name {name!r} is not kebab-case (e.g. 'my-optimizer')")
        if not callable(factory):
            raise PluginFailure(f"{kind} {name!r}: factory {factory!r} is not callable")
        taken = self._registry[kind].get(name)
        if taken is not None:
            raise PluginFailure(f"{kind} {name!r} is already registered by plugin {taken.plugin!r}")
        if any(p.kind == kind and p.name == name for p in pending):
            raise PluginFailure(f"{kind} {name!r} is registered twice by this plugin")
        return Registration(kind, name, factory, plugin_name)

    @staticmethod
    def _fail(record: PluginRecord, reason: str) -> None:
        record.status, record.reason = "failed", reason.replace("\n", " ")
        record.registers.clear()

    # -- lookup --------------------------------------------------------------------------------
    def registered(self, kind: str) -> dict[str, Callable]:
        """All names of one kind and their factories, sorted by name."""
        return {name: reg.factory for name, reg in sorted(self._registry[check_kind(kind)].items())}

    def registration(self, kind: str, name: str) -> Registration:
        registry = self._registry[check_kind(kind)]
        if name not in registry:
            what = kind.replace("_", " ")
            for plugin, entry_point in self._disabled_entry_points.items():
                if (kind, name) in _would_register(entry_point):
                    raise DisabledPluginError(what, name, plugin, self.disabled_by[plugin])
            raise UnknownNameError(what, name, list(registry))
        return registry[name]

    def resolve(self, kind: str, name: str) -> Callable:
        """The factory registered under ``name``; an unknown name raises :class:`UnknownNameError`."""
        return self.registration(kind, name).factory

    @property
    def failed(self) -> list[PluginRecord]:
        return [record for record in self.plugins if record.status == "failed"]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownNameError("plugin kind", kind, list(KINDS))
    return kind


def disabled_from_environment() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV_VAR, "").split(",") if name.strip()}


def _would_register(entry_point: metadata.EntryPoint) -> set[tuple[str, str]]:
    """The ``(kind, name)`` pairs a (disabled) plugin would register; empty when it fails in any way.

    Only called on the error path, when a name is already unknown: rather than loading disabled plugins up
    front (which disabling is meant to avoid: a slow or broken import), the disabled plugin is loaded now, in
    a throwaway plugin manager, and its hooks are called with a ``register`` that only records names. Its
    objects are never kept, and any failure means "it provides nothing" so the plain unknown-name error stands.
    """
    names: set[tuple[str, str]] = set()
    try:
        plugin = entry_point.load()
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        manager.register(plugin)
        for hook_name, kind in hookspecs.HOOK_KINDS.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                def register(name, factory, kind=kind):
                    names.add((kind, name))

                impl.function(**({"register": register} if "register" in impl.argnames else {}))
    except Exception:  # a disabled plugin that cannot even say what it provides provides nothing
        return set()
    return names


def _load_order(entry_point: metadata.EntryPoint) -> tuple:
    dist = entry_point.dist.name if entry_point.dist is not None else ""
    return (dist != OWN_DISTRIBUTION, dist, entry_point.name)


# -- the process-wide host, built on first use ---------------------------------------------------
_current: Host | None = None


def get_host() -> Host:
    """The host of this process, loading plugins on first use."""
    global _current
    if _current is None:
        _current = Host()
    return _current


def reload(disabled: Iterable[str] = (), plugins: Iterable[tuple[str, object]] = ()) -> Host:
    """Rebuild the host (after installing a plugin, or to disable some) and make it current."""
    global _current
    _current = Host(disabled=disabled, plugins=plugins)
    return _current


def registered(kind: str) -> dict[str, Callable]:
    """``{name: factory}`` for one kind: optimizer, opponent_model, perturbation, env, attack, executor."""
    return get_host().registered(kind)


def resolve(kind: str, name: str) -> Callable:
    """The factory of ``name`` of one kind; unknown names raise with the known names and a suggestion."""
    return get_host().resolve(kind, name)


def create(kind: str, name: str, *args, **kwargs):
    """Build the object registered under ``name`` of one kind: ``factory(*args, **kwargs)``.

    The host knows the name a factory was registered under, so a plugin never repeats it: a
    :class:`~ipo_robust.errors.ConfigError` raised while building is re-raised naming the owner, e.g.
    ``optimizer 'ipo-vpg': lr1 must be a finite number > 0, got -1``.
    """
    factory = resolve(kind, name)
    try:
        return factory(*args, **kwargs)
    except ConfigError as error:
        owner = f"{kind.replace('_', ' ')} {name!r}"
        message = str(error)
        raise ConfigError(message if message.startswith(owner) else f"{owner}: {message}") from None
