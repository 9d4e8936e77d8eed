"""The run configuration (hydra structured config) and turning it into a stream, a method and an engine.

Config groups: `method=<name>` and `protocol=<name>` (registered by the modules in methods/ and protocols/);
`method=<intervention> method.base=<learner>` picks the learner an intervention runs on (cyclic_bench.registry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from cyclic_bench.errors import ConfigError, require
from cyclic_bench.events import parse_events
from cyclic_bench.method import Method, MethodSpec
from cyclic_bench.registry import get_method, get_protocol, load_all, method_label
from cyclic_bench.stream import Stream

DEVICES = ("auto", "cpu", "cuda")


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
    require(isinstance(config.seeds, int) and config.seeds > 0, f"seeds={config.seeds} is not allowed: it must be an integer > 0")
    require(config.first_seed >= 0, f"first_seed={config.first_seed} is not allowed: it must be >= 0")
    require(config.env_workers >= 0, f"env_workers={config.env_workers} is not allowed: it must be >= 0 (0 = in-process)")
    require(config.checkpoint_every >= 0, f"checkpoint_every={config.checkpoint_every} is not allowed: it must be >= 0")
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
    spec = MethodSpec(
        obs_dim=stream.obs_dim,
        action_dim=stream.action_dim,
        action_kind=stream.action_kind,
        seed_ids=tuple(range(config.first_seed, config.first_seed + config.seeds)),
        n_tasks=len(stream.tasks),
        total_steps=stream.total_steps,
        device=device,
    )
    return RunPlan(config, stream, method_cls, method_config, spec)


def load_run_config(path) -> DictConfig:
    """The resolved configuration saved in a run directory."""
    try:
        return OmegaConf.load(path)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
