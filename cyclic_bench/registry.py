"""Learners, interventions, methods and protocol families, looked up by name.

The suite's own live in `cyclic_bench.methods` (the repository's `methods/`: `learners/`, `interventions/` and
standalone methods) and `cyclic_bench.protocols`. Another installed package can add its own through the entry-point
groups `cyclic_bench.methods` / `cyclic_bench.protocols` (the entry point names a module that registers on import).

A method name is one of:
- a learner (`register_learner`), e.g. `td3`, `sac`: the learner alone;
- an intervention (`register_intervention`), e.g. `redo`: that intervention on a learner, `td3` unless `method.base`
  names another; every (intervention, learner) pair the two allow exists (`pairs()`);
- a standalone method (`register_method`), e.g. `hebbian`.
Each pair's config is one flat dataclass, the intervention's fields beside the learner's (so `method.lr`,
`method.redo_every` and learner-specific fields all validate), stored in hydra's ConfigStore as the node `redo`
(on its default learner) or `redo@sac`; `resolve_method_overrides` turns `method=redo method.base=sac` into the
node. A standalone method's config is stored under its name.

A plug-in that fails to import is reported on one line (which entry point, which error) and skipped, so the other
methods stay usable; every plug-in's package and version are recorded (`plugins()`, a run's meta.json).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from hydra.core.config_store import ConfigStore

from cyclic_bench.errors import ConfigError, require

DEFAULT_LEARNER = "td3"  # what `method=<intervention>` runs on without `method.base`


@dataclass(frozen=True)
class ProtocolFamily:
    name: str
    config: type  # dataclass with `name` and `size` fields
    build: Callable  # config -> Stream


@dataclass(frozen=True)
class InterventionEntry:
    name: str
    cls: type  # an Intervention subclass
    config: type  # its own settings (a dataclass)
    defaults: dict  # field defaults of the pair's config this registration overrides (learner fields too)
    learners: tuple[str, ...] | None  # the learners it runs on; None: every learner that supports it


_METHODS: dict[str, tuple[type, type]] = {}  # standalone: name -> (method class, its config dataclass)
_LEARNERS: dict[str, type] = {}  # name -> Learner subclass
_INTERVENTIONS: dict[str, InterventionEntry] = {}
_PAIRS: dict[tuple[str, str], tuple[type, type]] = {}  # (method name, learner) -> (Agent subclass, pair config)
_PROTOCOLS: dict[str, ProtocolFamily] = {}
_PLUGINS: list[dict] = []  # every plug-in entry point found: group, name, module, package, version, what it registered, error
_METHOD_PLUGIN: dict[str, dict] = {}  # method name -> the plug-in that registered it
_loading: dict | None = None  # the plug-in being imported (its registrations are credited to it)
_loaded = False


def register_method(name: str, config: type | None = None, **defaults):
    """Class decorator: register a standalone Method under `name`; `defaults` override its Config's field defaults."""

    def decorate(cls):
        base = config or cls.Config
        named = _config_class(f"{cls.__name__}_{name}_Config", (base,), {"name": name, **defaults})
        _METHODS[name] = (cls, named)
        _credit(name)
        ConfigStore.instance().store(group="method", name=name, node=named)
        return cls

    return decorate


def register_learner(name: str):
    """Class decorator: register a Learner; `method=<name>` then runs it alone, and interventions pair with it."""

    def decorate(cls):
        _LEARNERS[name] = cls
        _credit(name)
        _store_pairs()
        return cls

    return decorate


def register_intervention(name: str, config: type | None = None, learners: tuple[str, ...] | None = None, **defaults):
    """Class decorator: register an Intervention under `name`, optionally only on some `learners`.

    `defaults` override field defaults of the pair's config, the learner's fields included (e.g. `activation`).
    """

    def decorate(cls):
        _INTERVENTIONS[name] = InterventionEntry(name, cls, config or cls.Config, defaults, learners)
        _credit(name)
        _store_pairs()
        return cls

    return decorate


def register_protocol(name: str, config: type) -> Callable:
    """Function decorator: register a protocol family's `build(config) -> Stream` with its config dataclass."""

    def decorate(build):
        _PROTOCOLS[name] = ProtocolFamily(name, config, build)
        if _loading is not None:
            _loading["protocols"].append(name)
        ConfigStore.instance().store(group="protocol", name=name, node=config)
        return build

    return decorate


def _credit(method: str) -> None:
    """Record the plug-in being imported, if any, as the one that registered `method`."""
    if _loading is not None:
        _METHOD_PLUGIN[method] = _loading
        _loading["methods"].append(method)


# ---- pairs ------------------------------------------------------------------------------------------------
def _config_class(name: str, bases: tuple[type, ...], overrides: dict) -> type:
    """A dataclass inheriting `bases` with `overrides` as new field defaults; its __post_init__ runs every base's."""
    fields = [(key, _field(bases, key).type, _default(value)) for key, value in overrides.items()]
    checks = [hook for hook in (getattr(base, "__post_init__", None) for base in bases) if hook is not None]

    def __post_init__(self):
        for check in checks:
            check(self)

    return dataclasses.make_dataclass(name, fields, bases=bases, namespace={"__post_init__": __post_init__})


def _field(bases: tuple[type, ...], name: str) -> dataclasses.Field:
    match = [f for base in bases for f in dataclasses.fields(base) if f.name == name]
    if not match:
        raise TypeError(f"{', '.join(b.__name__ for b in bases)} have no field {name!r}")
    return match[0]


def _default(value: Any) -> dataclasses.Field:
    if isinstance(value, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(value))
    return dataclasses.field(default=value)


def _runs_on(entry: InterventionEntry, learner: str) -> bool:
    supported = _LEARNERS[learner].supports
    return (entry.learners is None or learner in entry.learners) and (supported is None or entry.name in supported)


def _make_pair(name: str, learner: str) -> tuple[type, type]:
    from cyclic_bench.agent import Agent
    from cyclic_bench.intervention import Intervention

    learner_cls = _LEARNERS[learner]
    if name == learner:
        intervention_cls, bases, defaults = Intervention, (learner_cls.Config,), {}
    else:
        entry = _INTERVENTIONS[name]
        intervention_cls, bases, defaults = entry.cls, (entry.config, learner_cls.Config), entry.defaults
        shared = {f.name for f in dataclasses.fields(entry.config)} & {f.name for f in dataclasses.fields(learner_cls.Config)}
        if shared - {"name"}:
            raise TypeError(f"intervention {name} and learner {learner} both have the settings {', '.join(sorted(shared - {'name'}))}")
    config = _config_class(f"{intervention_cls.__name__}_{learner}_Config", bases, {"name": name, "base": learner, **defaults})
    attributes = {"Learner": learner_cls, "Intervention": intervention_cls, "Config": config, "action_kinds": learner_cls.action_kinds}
    attributes["observations"] = learner_cls.observations
    attributes["__module__"] = (learner_cls if name == learner else intervention_cls).__module__  # where the method is written
    return type(f"{intervention_cls.__name__}On{learner_cls.__name__}", (Agent,), attributes), config


def node_name(name: str, learner: str) -> str:
    """The ConfigStore node of a pair: the method name on its default learner, `name@learner` otherwise."""
    return name if learner == default_learner(name) else f"{name}@{learner}"


def split_node(node: str) -> tuple[str, str | None]:
    """`redo@sac` -> ("redo", "sac"); a plain name -> (name, None)."""
    name, _, learner = node.partition("@")
    return name, learner or None


def _store_pairs() -> None:
    """Build and store the config node of every pair not built yet (registrations may come in any order)."""
    combos = [(name, name) for name in _LEARNERS]
    combos += [(name, learner) for name, entry in _INTERVENTIONS.items() for learner in _LEARNERS if _runs_on(entry, learner)]
    for combo in combos:
        if combo not in _PAIRS:
            _PAIRS[combo] = _make_pair(*combo)
            ConfigStore.instance().store(group="method", name=node_name(*combo), node=_PAIRS[combo][1])


# ---- lookups ------------------------------------------------------------------------------------------------
def load_all() -> None:
    """Import the built-in methods and protocols and every installed plug-in (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in ("cyclic_bench.methods", "cyclic_bench.protocols"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            importlib.import_module(info.name)
    for group in ("cyclic_bench.methods", "cyclic_bench.protocols"):
        for entry in entry_points(group=group):
            load_plugin(group, entry)


def load_plugin(group: str, entry) -> dict:
    """Import one entry point; a failure is reported on one line and recorded, never raised."""
    global _loading
    dist = getattr(entry, "dist", None)
    record = {"group": group, "name": entry.name, "module": entry.value, "methods": [], "protocols": [], "error": None}
    record |= {"package": dist.name if dist else None, "version": dist.version if dist else None}
    _loading = record
    try:
        entry.load()
    except Exception as error:  # whatever the plug-in's import raises, the rest of the suite stays usable
        record["error"] = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        print(f"warning: plug-in {_describe(record)} failed to import and is skipped: {record['error']}", file=sys.stderr)
    finally:
        _loading = None
    _PLUGINS.append(record)
    return record


def _describe(plugin: dict) -> str:
    package = f", package {plugin['package']} {plugin['version']}" if plugin["package"] else ""
    return f"{plugin['name']!r} ({plugin['group']} = {plugin['module']}{package})"


def plugins() -> list[dict]:
    """Every plug-in entry point found: its package and version, what it registered, and its import error (or None)."""
    load_all()
    return [dict(p, methods=list(p["methods"]), protocols=list(p["protocols"])) for p in _PLUGINS]


def method_plugin(name: str) -> dict | None:
    """The plug-in that registered method `name` (a learner, an intervention or a standalone method), or None."""
    load_all()
    return _METHOD_PLUGIN.get(name)


def _broken_plugins() -> str:
    broken = [f"{_describe(p)}: {p['error']}" for p in _PLUGINS if p["error"]]
    return f" (plug-ins that failed to import: {'; '.join(broken)})" if broken else ""


def method_names() -> list[str]:
    """Every name `method=` takes: learners, interventions and standalone methods."""
    load_all()
    return sorted({*_METHODS, *_LEARNERS, *_INTERVENTIONS})


def learner_names() -> list[str]:
    load_all()
    return sorted(_LEARNERS)


def intervention_names() -> list[str]:
    load_all()
    return sorted(_INTERVENTIONS)


def pairs() -> list[tuple[str, str]]:
    """Every (method name, learner) that runs: each learner alone and each intervention on each learner it allows."""
    load_all()
    return sorted(_PAIRS)


def learners_of(name: str) -> list[str]:
    """The learners `method=<name>` runs on, its default first (empty for a standalone method)."""
    load_all()
    found = sorted(learner for method, learner in _PAIRS if method == name)
    return sorted(found, key=lambda learner: learner != default_learner(name))


def default_learner(name: str) -> str | None:
    """What `method=<name>` runs on without `method.base`: the learner itself, DEFAULT_LEARNER, or None (standalone)."""
    if name in _LEARNERS:
        return name
    return DEFAULT_LEARNER if name in _INTERVENTIONS else None


def get_method(name: str, base: str | None = None) -> tuple[type, type]:
    """(method class, config dataclass) of `method=<name>` on the learner `base` (default: its default learner)."""
    load_all()
    if name in _METHODS:
        require(base is None, f"method.base={base} is not allowed: method={name} is a standalone method, not run on a learner")
        return _METHODS[name]
    if name not in _LEARNERS and name not in _INTERVENTIONS:
        raise ConfigError(f"method={name!r} is not a known method; known: {', '.join(method_names())}{_broken_plugins()}")
    learner = base or default_learner(name)
    if name in _LEARNERS:
        require(learner == name, f"method.base={learner} is not allowed: method={name} is a learner itself; use method={learner}")
    require(learner in _LEARNERS, f"method.base={learner} is not a known learner; known: {', '.join(sorted(_LEARNERS))}")
    require(
        (name, learner) in _PAIRS, f"method.base={learner} is not allowed for method={name}; it runs on: {', '.join(learners_of(name))}"
    )
    return _PAIRS[name, learner]


def learner_of(method: dict) -> str | None:
    """The learner a recorded method config ran on (configs from before `base` existed ran on the default), or None."""
    load_all()
    return method.get("base") or default_learner(method.get("name", ""))


def method_label(name: str, base: str | None = None) -> str:
    """How runs and board rows name a method: `redo` on its default learner, `redo-sac` on another."""
    return name if base in (None, name, default_learner(name)) else f"{name}-{base}"


def resolve_method_overrides(overrides: list[str]) -> list[str]:
    """Hydra overrides with `method=X method.base=L` turned into the pair's config node (sweeps of either too).

    Checks every name and every `method.<key>=` against the config it lands in, each refusal in one line.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    load_all()
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return overrides  # the caller says which override cannot be read
    group = next((o for o in parsed if o.key_or_group == "method" and o.package is None), None)
    base = next((o for o in parsed if o.key_or_group == "method.base"), None)
    names = [split_node(n) for n in _choices(group)] if group is not None else [(DEFAULT_LEARNER, None)]
    bases = _choices(base) if base is not None else [None]
    combos = [(name, learner or node_base) for name, node_base in names for learner in bases]
    configs = {combo: get_method(*combo)[1] for combo in combos}
    for o in parsed:
        key = o.key_or_group
        if key.startswith("method.") and key != "method.base" and o.type == OverrideType.CHANGE:
            for (name, learner), config in configs.items():
                _check_setting(key.split(".")[1], name, learner or default_learner(name), config)
    if base is None:
        return overrides
    nodes = ",".join(dict.fromkeys(node_name(name, learner) for name, learner in combos))
    kept = [o.input_line for o in parsed if o is not group and o is not base]
    return [f"method={nodes}", *kept]


def _choices(override) -> list[str]:
    if not override.is_sweep_override():
        return [str(override.value())]
    try:
        return list(override.sweep_string_iterator())
    except Exception:
        raise ConfigError(f"{override.input_line} is not allowed with method.base: sweep a list of names (a,b,c)") from None


def _check_setting(key: str, name: str, learner: str | None, config: type) -> None:
    fields = {f.name for f in dataclasses.fields(config)}
    if key in fields:
        return
    owners = [other for other, cls in _LEARNERS.items() if key in {f.name for f in dataclasses.fields(cls.Config)}]
    where = f"{name} on {learner}" if learner and learner != name else name
    hint = f" (a setting of {', '.join(owners)}, not of {learner})" if owners and learner not in owners else ""
    raise ConfigError(f"method.{key} is not a setting of method {where}{hint}; allowed: {', '.join(sorted(fields))}")


def resolve_size(config: Any, sizes: dict[str, dict], **base: Any) -> dict:
    """A protocol's settings: `base`, then the preset `sizes[config.size]`, then every field the config sets (not None)."""
    require(config.size in sizes, f"protocol.size={config.size!r} is not a size of {config.name}; allowed: {', '.join(sizes)}")
    settings = {**base, **sizes[config.size]}
    settings.update({k: getattr(config, k) for k in settings if getattr(config, k) is not None})
    return settings


def protocol_names() -> list[str]:
    load_all()
    return sorted(_PROTOCOLS)


def get_protocol(name: str) -> ProtocolFamily:
    load_all()
    if name not in _PROTOCOLS:
        raise ConfigError(f"protocol={name!r} is not a known protocol; known: {', '.join(sorted(_PROTOCOLS))}{_broken_plugins()}")
    return _PROTOCOLS[name]
