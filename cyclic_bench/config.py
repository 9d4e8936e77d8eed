"""The run configuration (hydra structured config) and turning it into a stream, a method and an engine.

Config groups: `method=<name>` and `protocol=<name>` (registered by the modules in methods/ and protocols/);
`method=<intervention> method.base=<learner>` picks the learner an intervention runs on (cyclic_bench.registry).
Every value is checked before anything is built or written: the top-level keys here (`plan_run`), each method's and
protocol's fields in their config dataclasses, and hydra's own refusals (a key that names no setting, a value of the
wrong type) are rewritten by `override_error` into one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from cyclic_bench.errors import ConfigError, boolean, integer, require, require_settings
from cyclic_bench.events import parse_events
from cyclic_bench.method import Method, MethodSpec
from cyclic_bench.registry import get_method, get_protocol, load_all, method_label, split_node
from cyclic_bench.stream import Stream

DEVICES = ("auto", "cpu", "cuda")
OPTIONAL_KEYS = {"resume", "capture"}  # a saved run records no resume, and runs saved before capture existed lack it


@dataclass
class RunConfig:
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"method": "td3"}, {"protocol": "cyclic_mujoco"}])
    method: Any = MISSING  # the method's config (group `method`)
    protocol: Any = MISSING  # the protocol's config (group `protocol`)
    seeds: int = 3  # seeds trained together in this run
    first_seed: int = 0  # global id of the first seed; sweep shards use different first seeds
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    checkpoint_every: int = 0  # environment steps per seed between checkpoints; 0 = at every evaluation
    progress: bool = True  # show a progress bar
    env_workers: int = 0  # processes stepping the environments in parallel; 0 = in the training process
    capture: bool = True  # on device=cuda, replay each gradient update from CUDA graphs (same results); false = eager
    resume: str | None = None  # a run directory to continue from its last checkpoint
    events: list[Any] = field(default_factory=list)  # perturbations, e.g. [{step: 5000, kind: zero_weights, fraction: 0.33}]


def register_run_config() -> None:
    load_all()
    ConfigStore.instance().store(name="run", node=RunConfig)
    OmegaConf.register_new_resolver("method_label", _label_of_run, replace=True)  # run folders: redo, redo-sac


def _label_of_run(*, _root_: DictConfig) -> str:
    return method_label(_root_.method.name, _root_.method.get("base"))


def resolve_device(name: str) -> torch.device:
    require(name in DEVICES, f"device={name!r} is not allowed; allowed: {', '.join(DEVICES)}")
    if name == "cuda":
        require(torch.cuda.is_available(), "device=cuda but no CUDA GPU is visible to torch; use device=auto or device=cpu")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def _instantiate(config_cls: type, node: DictConfig | dict, what: str):
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    require(not unknown, f"{what} has no setting {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    return config_cls(**values)


@dataclass
class RunPlan:
    """A validated configuration: the stream, and the method still to be built (it may allocate a lot)."""

    config: DictConfig
    stream: Stream
    method_cls: type[Method]
    method_config: Any
    spec: MethodSpec

    @property
    def checkpoint_every(self) -> int:
        return self.config.checkpoint_every or self.stream.eval_every

    def build_method(self) -> Method:
        return self.method_cls(self.method_config, self.spec)


def plan_run(config: DictConfig) -> RunPlan:
    """Validate `config` and build its stream; raises ConfigError with a one-line message."""
    keys = run_keys()
    missing, unknown = sorted(keys - OPTIONAL_KEYS - set(config)), sorted(set(config) - keys)
    require(not missing, f"the run configuration has no {', '.join(missing)}; it needs {', '.join(sorted(keys))}")
    require(not unknown, f"{', '.join(unknown)} is not a setting; allowed: {', '.join(sorted(keys))}")
    require_settings(
        "",
        config,
        {"seeds": integer(1), "first_seed": integer(0), "env_workers": integer(0), "checkpoint_every": integer(0), "progress": boolean()}
        | ({"capture": boolean()} if "capture" in config else {}),
    )
    for group in ("method", "protocol"):
        node = config[group]
        require(isinstance(node, Mapping) and isinstance(node.get("name"), str), f"{group}={node} is not allowed: it must name a {group}")
    require(
        isinstance(config.events, list | ListConfig) and all(isinstance(e, Mapping) for e in config.events),
        f"events={config.events} is not allowed: it must be a list of events, e.g. [{{step: 400, kind: zero_weights, fraction: 0.33}}]",
    )
    device = resolve_device(config.device)
    family = get_protocol(config.protocol.name)
    stream = family.build(_instantiate(family.config, config.protocol, f"protocol {family.name}"))
    events = OmegaConf.to_container(config.events, resolve=True) if isinstance(config.events, ListConfig) else list(config.events)
    if events:
        stream = dataclasses.replace(stream, events=stream.events + parse_events(events, stream.total_steps))
    method_cls, method_config_cls = get_method(config.method.name, config.method.get("base"))
    method_config = _instantiate(method_config_cls, config.method, f"method {method_label(config.method.name, config.method.get('base'))}")
    require(
        stream.action_kind in method_cls.action_kinds,
        f"method={config.method.name!r} cannot play {stream.name}: it has {stream.action_kind} actions; "
        f"the method supports {', '.join(sorted(method_cls.action_kinds))}",
    )
    observations = "vector" if stream.obs_shape is None else "pixels"
    require(
        method_cls.observations == observations,
        f"method={method_label(config.method.name, config.method.get('base'))} cannot play {stream.name}: it has {observations} "
        f"observations and the method learns from {method_cls.observations} (pixels: method.base=drq with protocol.observation=pixels)",
    )
    spec = MethodSpec(
        obs_dim=stream.obs_dim,
        action_dim=stream.action_dim,
        action_kind=stream.action_kind,
        seed_ids=tuple(range(config.first_seed, config.first_seed + config.seeds)),
        n_tasks=len(stream.tasks),
        total_steps=stream.total_steps,
        device=device,
        generation_steps=stream.generation_steps,
        capture=config.get("capture", True),
        obs_shape=stream.obs_shape,
    )
    method_cls.check_resources(method_config, spec)
    return RunPlan(config, stream, method_cls, method_config, spec)


def load_run_config(path) -> DictConfig:
    """The resolved configuration saved in a run directory; ConfigError (one line naming the file) if unreadable."""
    try:
        config = OmegaConf.load(path)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}: {getattr(error, 'problem', 'syntax error')})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}; restore the run's configuration from a copy") from None
    require(isinstance(config, DictConfig), f"{path} is not a run configuration (a mapping of settings); restore it from a copy")
    missing = sorted(run_keys() - OPTIONAL_KEYS - set(config))
    require(not missing, f"{path} is not a whole run configuration: it has no {', '.join(missing)}; restore it from a copy")
    return config


def run_keys() -> set[str]:
    """The top-level keys of a run configuration."""
    return {f.name for f in dataclasses.fields(RunConfig)} - {"defaults"}


# ---- hydra's refusals, in the suite's words -------------------------------------------------------------------
def override_error(overrides: list[str]) -> str | None:
    """The first override naming no setting, or giving a value of the wrong type, as one line; None if all fit.

    Overrides are read as hydra reads them (`method=`/`protocol=` choose the groups whose fields `method.*` and
    `protocol.*` set); sweeps (`a=1,2`) are checked value by value.
    """
    try:
        parsed = [o for o in OverridesParser.create().parse_overrides(overrides) if not o.key_or_group.startswith("hydra")]
    except HydraException:
        return None  # not even parseable: hydra's own message says why
    groups = {"method": "td3", "protocol": "cyclic_mujoco"}
    groups |= {o.key_or_group: o.get_value_element_as_str() for o in parsed if o.key_or_group in groups and not o.is_sweep_override()}
    run_fields = {name: hint for name, hint in typing.get_type_hints(RunConfig).items() if name != "defaults"}
    for o in parsed:
        key = o.key_or_group
        group, _, path = key.partition(".")
        if key in groups:
            continue
        fields, owner, name = (
            (_fields(group, groups[group]), f" of {group} {groups[group]}", path) if group in groups else (run_fields, "", key)
        )
        field_name, _, deeper = name.partition(".")
        if fields is None or deeper:
            continue  # an unknown group is reported by the registry; a nested value (an event's field) where it is used
        if field_name not in fields:
            return f"{key} is not a setting{owner}; allowed: {', '.join(sorted(fields))}"
        for value in list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]:
            if not _fits(value, fields[field_name]):
                return f"{key}={_written(value)} is not allowed: it must be {_describe(fields[field_name])}"
    return None


def _fields(group: str, name: str) -> dict[str, Any] | None:
    try:
        config_cls = get_method(*split_node(name))[1] if group == "method" else get_protocol(name).config
    except ConfigError:
        return None
    return typing.get_type_hints(config_cls)


def _fits(value: Any, hint: Any) -> bool:
    """Whether hydra can store `value` (as its override parser read it) in a field typed `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit())
    if hint is float:
        return _is_number_text(value) if isinstance(value, str) else isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return not isinstance(value, list | dict)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    return True


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is list:
        return (
            f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s, e.g. [1,2]"
            if args and args[0] is not Any
            else "a list"
        )
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _written(value: Any) -> str:
    """A parsed override value as the user wrote it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_written(v) for v in value) + "]"
    return str(value)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of every job of a hydra multirun (the product of the sweeps), without hydra's own keys."""
    parsed = [o for o in OverridesParser.create().parse_overrides(overrides) if not o.key_or_group.startswith("hydra")]
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line] for o in parsed
    ]
    return [list(job) for job in itertools.product(*choices)]
