"""Methods and protocol families, looked up by name.

The suite's own live in `cyclic_bench.methods` and `cyclic_bench.protocols` (the repository's `methods/` and
`protocols/` folders). Another installed package can add its own through the entry-point groups
`cyclic_bench.methods` / `cyclic_bench.protocols` (the entry point names a module that registers on import).
Each registration also stores the config dataclass in hydra's ConfigStore, so `method=NAME` works on the
command line. A plug-in that fails to import is reported on one line (which entry point, which error) and skipped,
so the other methods stay usable; every plug-in's package and version are recorded (`plugins()`, a run's meta.json).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ProtocolFamily:
    name: str
    config: type  # dataclass with `name` and `size` fields
    build: Callable  # config -> Stream


_METHODS: dict[str, tuple[type, type]] = {}  # name -> (method class, its config dataclass)
_PROTOCOLS: dict[str, ProtocolFamily] = {}
_PLUGINS: list[dict] = []  # every plug-in entry point found: group, name, module, package, version, what it registered, error
_METHOD_PLUGIN: dict[str, dict] = {}  # method name -> the plug-in that registered it
_loading: dict | None = None  # the plug-in being imported (its registrations are credited to it)
_loaded = False


def register_method(name: str, config: type | None = None, **defaults):
    """Class decorator: register a Method under `name`; `defaults` override its Config's field defaults."""

    def decorate(cls):
        base = config or cls.Config
        overrides = {"name": name, **defaults}
        fields = [(key, _field(base, key).type, dataclasses.field(default=value)) for key, value in overrides.items()]
        named = dataclasses.make_dataclass(f"{cls.__name__}_{name}_Config", fields, bases=(base,))
        _METHODS[name] = (cls, named)
        if _loading is not None:
            _METHOD_PLUGIN[name] = _loading
            _loading["methods"].append(name)
        ConfigStore.instance().store(group="method", name=name, node=named)
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


def _field(cls: type, name: str) -> dataclasses.Field:
    match = [f for f in dataclasses.fields(cls) if f.name == name]
    if not match:
        raise TypeError(f"{cls.__name__} has no field {name!r}")
    return match[0]


def load_all() -> None:
    """Import the built-in methods and protocols and every installed plug-in (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in ("cyclic_bench.methods", "cyclic_bench.protocols"):
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            importlib.import_module(f"{package}.{info.name}")
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
    """The plug-in that registered method `name`, or None for the suite's own."""
    load_all()
    return _METHOD_PLUGIN.get(name)


def method_names() -> list[str]:
    load_all()
    return sorted(_METHODS)


def protocol_names() -> list[str]:
    load_all()
    return sorted(_PROTOCOLS)


def get_method(name: str) -> tuple[type, type]:
    """(method class, config dataclass) registered as `name`."""
    load_all()
    if name not in _METHODS:
        raise ConfigError(f"method={name!r} is not a known method; known: {', '.join(sorted(_METHODS))}{_broken_plugins()}")
    return _METHODS[name]


def _broken_plugins() -> str:
    broken = [f"{_describe(p)}: {p['error']}" for p in _PLUGINS if p["error"]]
    return f" (plug-ins that failed to import: {'; '.join(broken)})" if broken else ""


def resolve_size(config: Any, sizes: dict[str, dict], **base: Any) -> dict:
    """A protocol's settings: `base`, then the preset `sizes[config.size]`, then every field the config sets (not None)."""
    require(config.size in sizes, f"protocol.size={config.size!r} is not a size of {config.name}; allowed: {', '.join(sizes)}")
    settings = {**base, **sizes[config.size]}
    settings.update({k: getattr(config, k) for k in settings if getattr(config, k) is not None})
    return settings


def get_protocol(name: str) -> ProtocolFamily:
    load_all()
    if name not in _PROTOCOLS:
        raise ConfigError(f"protocol={name!r} is not a known protocol; known: {', '.join(sorted(_PROTOCOLS))}{_broken_plugins()}")
    return _PROTOCOLS[name]
