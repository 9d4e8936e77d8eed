"""Methods and protocol families, looked up by name.

The suite's own live in `cyclic_bench.methods` and `cyclic_bench.protocols` (the repository's `methods/` and
`protocols/` folders). Another installed package can add its own through the entry-point groups
`cyclic_bench.methods` / `cyclic_bench.protocols` (the entry point names a module that registers on import).
Each registration also stores the config dataclass in hydra's ConfigStore, so `method=NAME` works on the
command line.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
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
_loaded = False


def register_method(name: str, config: type | None = None, **defaults):
    """Class decorator: register a Method under `name`; `defaults` override its Config's field defaults."""

    def decorate(cls):
        base = config or cls.Config
        overrides = {"name": name, **defaults}
        fields = [(key, _field(base, key).type, dataclasses.field(default=value)) for key, value in overrides.items()]
        named = dataclasses.make_dataclass(f"{cls.__name__}_{name}_Config", fields, bases=(base,))
        _METHODS[name] = (cls, named)
        ConfigStore.instance().store(group="method", name=name, node=named)
        return cls

    return decorate


def register_protocol(name: str, config: type) -> Callable:
    """Function decorator: register a protocol family's `build(config) -> Stream` with its config dataclass."""

    def decorate(build):
        _PROTOCOLS[name] = ProtocolFamily(name, config, build)
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
            entry.load()


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
        raise ConfigError(f"method={name!r} is not a known method; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def resolve_size(config: Any, sizes: dict[str, dict], **base: Any) -> dict:
    """A protocol's settings: `base`, then the preset `sizes[config.size]`, then every field the config sets (not None)."""
    require(config.size in sizes, f"protocol.size={config.size!r} is not a size of {config.name}; allowed: {', '.join(sizes)}")
    settings = {**base, **sizes[config.size]}
    settings.update({k: getattr(config, k) for k in settings if getattr(config, k) is not None})
    return settings


def get_protocol(name: str) -> ProtocolFamily:
    load_all()
    if name not in _PROTOCOLS:
        raise ConfigError(f"protocol={name!r} is not a known protocol; known: {', '.join(sorted(_PROTOCOLS))}")
    return _PROTOCOLS[name]
