"""Configuration as data: frozen dataclasses, saved to and loaded from YAML/JSON,
overridden from the command line with `dotted.key=value` strings.

Stages define their own config dataclasses (nesting the shared `EnvConfig` and
`PolicyConfig` below) and use the generic helpers here.  Loading is strict: an
unknown key is an error that lists the valid ones.
"""

import dataclasses
import json
import pathlib
import types
import typing
from typing import Any, TypeVar

import yaml

from lsc.envs import default_backend, get_env_spec, make_env, obs_normalization
from lsc.policy import MLPPolicy, make_policy, preset_hidden
from lsc.validate import check_int, parse_number

C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
  """Which env to build.  None means the default (see `lsc.envs.make_env`)."""
  name: str = "halfcheetah"
  backend: str | None = None
  episode_length: int | None = None

  def resolved(self) -> "EnvConfig":
    """The same config with defaults filled in (what artifacts record)."""
    spec = get_env_spec(self.name)
    if self.episode_length is not None:  # 0 is refused, not read as "the default"
      check_int("episode_length", self.episode_length, low=1)
    return EnvConfig(self.name, self.backend or default_backend(self.name),
                     spec.episode_length if self.episode_length is None else self.episode_length)

  def build(self):
    return make_env(self.name, backend=self.backend, episode_length=self.episode_length)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  """Policy architecture: a preset, or explicit hidden sizes (which win)."""
  preset: str = "medium"
  hidden: tuple[int, ...] | None = None
  activation: str = "tanh"
  init_scheme: str = "uniform"
  # scale observations to [-1, 1] by the env's known bounds (mountain_car); recorded only when set
  normalize_obs: bool = dataclasses.field(default=False, metadata={"omit_default": True})

  def resolved(self, env_name: str) -> "PolicyConfig":
    if self.normalize_obs:
      obs_normalization(env_name)  # ValueError now, before any env is built, if it has no bounds
    hidden = self.hidden if self.hidden is not None else preset_hidden(env_name, self.preset)
    return dataclasses.replace(self, hidden=tuple(hidden))

  def num_params(self, env_name: str) -> int:
    """Parameters of this policy on env `env_name`, known without building the env."""
    spec = get_env_spec(env_name)
    return MLPPolicy(spec.observation_size, spec.action_size, self.resolved(env_name).hidden).num_params

  def build(self, env) -> MLPPolicy:
    return make_policy(env, self.preset, self.hidden, activation=self.activation,
                       init_scheme=self.init_scheme, normalize_obs=self.normalize_obs)


def to_dict(config, omit_defaults: bool = True) -> dict:
  """A dataclass config as plain JSON/YAML-ready data (tuples become lists).  Fields
  marked `omit_default` (added after artifacts existed) are left out while at their
  default, so records written before them still match, or, where the mark is a
  predicate of the config, while it holds (a setting of a feature that is off);
  `omit_defaults=False`: all."""
  def plain(x):
    if hasattr(x, "to_plain"):  # a mapping of configs (`lsc.methods.MethodConfigs`)
      return x.to_plain()
    if dataclasses.is_dataclass(x):
      return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
              if not (omit_defaults and _omitted(x, f))}
    if isinstance(x, (tuple, list)):
      return [plain(v) for v in x]
    return x
  return plain(config)


def _omitted(config, field: dataclasses.Field) -> bool:
  """Whether `to_dict` leaves `field` of `config` out (its `omit_default` mark)."""
  mark = field.metadata.get("omit_default")
  if callable(mark):
    return bool(mark(config))
  return bool(mark) and getattr(config, field.name) == field.default


def flatten(tree: dict, prefix: str = "") -> dict:
  """Nested dicts as one dict with dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _coerce(tp, value, where: str):
  """Converts plain data `value` to annotation `tp` (dataclass, tuple, Optional, scalar)."""
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    inner = [a for a in args if a is not type(None)]
    return _coerce(inner[0], value, where)
  if hasattr(tp, "from_plain"):  # a mapping of configs (`lsc.methods.MethodConfigs`)
    return tp.from_plain(value, where)
  if dataclasses.is_dataclass(tp):
    return from_dict(tp, value, where)
  if origin is tuple:
    item = args[0] if args else Any
    if item is str and isinstance(value, str):  # `tasks=speed`: the one task speed
      value = [value]
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{where}: expected a list, got {value!r}")
    return tuple(_coerce(item, v, where) for v in value)
  if tp in (int, float) and isinstance(value, bool):  # bool subclasses int: `budget=true` is not a budget of 1
    raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
  if tp in (int, float) and isinstance(value, str):  # YAML 1.1 reads `1e-3` and `1e6` as strings
    try:
      return parse_number(value, tp)
    except ValueError:
      raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}") from None
  if tp is float and isinstance(value, int):
    return float(value)
  if tp is int and isinstance(value, float) and value.is_integer():  # JSON's 1e6
    return int(value)
  if tp in (int, float, str, bool) and not isinstance(value, tp):
    raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
  return value


def from_dict(cls: type[C], data: dict, where: str = "config") -> C:
  """Builds dataclass `cls` from plain data; unknown keys raise ValueError.  `where`
  (the path of `data` in its file or config; "" at the top) prefixes error messages."""
  if not isinstance(data, dict):
    raise ValueError(f"{where or 'config'}: expected a mapping, got {data!r}")
  hints = typing.get_type_hints(cls)
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(data) - set(names))
  if unknown:
    raise ValueError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
  return cls(**{k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()})


def save(config, path: str | pathlib.Path) -> None:
  """Writes `config` as JSON (.json) or YAML (anything else)."""
  path = pathlib.Path(path)
  data = to_dict(config)
  text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
  path.write_text(text)


def load(cls: type[C], path: str | pathlib.Path) -> C:
  """Reads a JSON or YAML file into dataclass `cls` (missing keys keep their defaults)."""
  text = pathlib.Path(path).read_text()
  data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
  return from_dict(cls, data or {}, str(path))


def read_settings(path) -> dict:
  """The settings in the YAML or JSON file at `path` (a `--config`): a mapping of nested
  sections and/or dotted keys; ValueError naming the file if it is malformed or no mapping."""
  path = pathlib.Path(path)
  try:
    data = yaml.safe_load(path.read_text())  # JSON is YAML too
  except yaml.YAMLError as error:
    raise ValueError(f"--config {path}: malformed YAML ({error})") from None
  if data is not None and not isinstance(data, dict):
    raise ValueError(f"--config {path}: expected a mapping of settings (e.g. search.budget: 100000), "
                     f"got a {type(data).__name__}")
  return data or {}


def section_settings(section: str, file=None, items=(), example: str = "seed=1") -> dict:
  """The `section.*` settings of a `--config` file (others are left out: one file serves
  every command) and of `--set` items (which must all be `section.*`), dotted keys
  without the section's prefix, the file's first: what `override` applies to a
  `section` dataclass (`lsc collect`: "collect", `lsc train`: "train").  `example`: a
  setting of the section, without its prefix, that the refusal of another key shows."""
  prefix = f"{section}."
  found = {k[len(prefix):]: v for k, v in flatten(read_settings(file)).items() if k.startswith(prefix)} if file else {}
  for key, value in assignments(list(items)).items():
    if not key.startswith(prefix):
      raise ValueError(f"--set {key}: this command takes {prefix}* settings (e.g. {prefix}{example})")
    found[key[len(prefix):]] = value
  return found


def assignments(items: list[str]) -> dict:
  """`dotted.key=value` strings (`--set`) as {dotted key: value parsed as YAML}."""
  updates = {}
  for item in items:
    key, sep, raw = item.partition("=")
    if not sep:
      raise ValueError(f"override {item!r} is not of the form key=value")
    updates[key.strip()] = yaml.safe_load(raw)
  return updates


def override(config: C, updates, where: str = "") -> C:
  """`config` (a dataclass, nested ones included) with `updates` applied: a mapping of
  dotted keys and/or nested sections (a `--config` file, the flags of a command line)
  or a list of `dotted.key=value` strings (`--set`, values parsed as YAML).  The
  result is rebuilt by `from_dict`, so every value is type-checked; an unknown key
  raises ValueError listing the valid ones."""
  if isinstance(updates, (list, tuple)):
    updates = assignments(list(updates))
  if not isinstance(updates, dict):
    raise ValueError(f"{where or 'config'}: expected a mapping of settings (e.g. search.budget: 100000), "
                     f"got a {type(updates).__name__}")
  data = to_dict(config, omit_defaults=False)
  for key, value in flatten(updates).items():
    *parents, leaf = key.split(".")
    node = data
    for depth, part in enumerate(parents):
      if not isinstance(node.get(part), dict):
        section = ".".join(parents[:depth + 1])
        raise ValueError(f"unknown setting {key!r}: {section!r} is not a config section; "
                         f"valid keys{_of(parents[:depth])}: {', '.join(node)}")
      node = node[part]
    if isinstance(node.get(leaf), dict):
      example, section = key, node[leaf]
      while isinstance(section, dict) and section:  # down to a leaf: a key that can be set
        first = next(iter(section))
        example, section = f"{example}.{first}", section[first]
      raise ValueError(f"setting {key!r} is a config section: set its keys, e.g. {example}=...")
    if leaf not in node:
      raise ValueError(f"unknown setting {key!r}; valid keys{_of(parents)}: {', '.join(node)}")
    node[leaf] = value
  return from_dict(type(config), data, where)


def _of(parents: list[str]) -> str:
  return f" of {'.'.join(parents)}" if parents else ""
