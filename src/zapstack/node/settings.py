"""``zap node``'s options from flags, ``ZAP_*`` environment variables and a TOML file.

Contract
--------
* Every node option has one row in :data:`OPTIONS` (its default, how a value
  from the environment or the file is read and checked).  :func:`resolve`
  takes each option from the first source that sets it, in this order::

      flag  >  environment (ZAP_<NAME>)  >  config file  >  default

* The **home** is ``--home``, else ``$ZAP_HOME``, else ``home`` in a config
  file named by ``--config`` / ``$ZAP_CONFIG``, else :data:`DEFAULT_HOME`
  (``~/.zapstack``).
* The **config file** is ``--config PATH``, else ``$ZAP_CONFIG``, else
  ``<home>/zap.toml`` when it exists (none otherwise).  It is TOML (stdlib
  ``tomllib``) with the option names as top-level keys (``http_port = 9464``);
  an unknown key, a value of the wrong type or out of range is refused, and a
  home's own ``zap.toml`` cannot move the home.
* A bad value from any source raises :class:`~zapstack.errors.ConfigError`
  with one line naming the source (``ZAP_HTTP_PORT='x': ...``, ``zap.toml:
  http_port: ...``); ``zap node`` prints it and exits 2.  Flags are checked by
  the CLI at parse time with the same ranges.

Pure: the environment is passed in (a mapping), nothing is cached.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from zapstack.bootstrap.server import HOLD_PINS
from zapstack.errors import ConfigError
from zapstack.node.config import DB_MAX_GIB

__all__ = [
    "DEFAULT_HOME",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "OPTIONS",
    "QUIC_CHOICES",
    "NodeSettings",
    "Option",
    "config_path",
    "resolve",
    "resolve_home",
    "zap_version",
]

ENV_PREFIX = "ZAP_"
DEFAULT_HOME = Path("~/.zapstack")
"""The home when neither ``--home``, ``$ZAP_HOME`` nor a named config file sets one."""
CONFIG_NAME = "zap.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
QUIC_CHOICES = ("qh3", "aioquic")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _int(lo: int, hi: int) -> Callable[[object], object]:
    def read(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise ValueError(f"{value} is not in {lo} .. {hi}")
        return value

    return read


def _choice(choices: tuple[str, ...]) -> Callable[[object], object]:
    def read(value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        if value.strip().lower() not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value.strip().lower()

    return read


def _bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not a boolean (true or false)")


def _from_env(text: str, default: object) -> object:
    """An environment string as the option's type (that of its default)."""
    if isinstance(default, bool):
        if text.strip().lower() not in _TRUE | _FALSE:
            raise ValueError(f"{text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")
        return text.strip().lower() in _TRUE
    if isinstance(default, int):
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise ValueError("not an integer") from None
    return text


def _host(value: object) -> object:
    if not isinstance(value, str) or not value.strip() or len(value) > 253:
        raise ValueError(f"{value!r} is not a host name or address")
    return value.strip()


@dataclass(frozen=True, slots=True)
class Option:
    """One node option: its default and how a value is read and checked."""

    default: object
    """The value when no source sets it."""
    read: Callable[[object], object]
    """A typed value (TOML's, or an environment string converted to the default's
    type) -> the checked value; ``ValueError`` with why not."""
    help: str
    """What it does (the options table of ``docs/operations.md`` §1)."""


OPTIONS: dict[str, Option] = {
    "http_port": Option(0, _int(0, 65535), "HTTP port for /health, /metrics, /explorer (0: off)"),
    "http_host": Option("127.0.0.1", _host, "address the HTTP server binds"),
    "quic": Option("qh3", _choice(QUIC_CHOICES), "QUIC stack"),
    "halt_height": Option(0, _int(0, 2**63 - 1), "stop deciding after this height (0: never)"),
    "state_sync": Option(False, _bool, "empty data dir: download a recent state first"),
    "db_max_gib": Option(
        DB_MAX_GIB, _int(1, 1 << 16), "GiB the state store (LMDB map) may grow to at most"
    ),
    "state_hold_blocks": Option(
        HOLD_PINS, _int(1, 1 << 20), "blocks a root peers sync from stays served after the last 4"
    ),
    "log_level": Option("warning", _choice(LOG_LEVELS), "terminal log level"),
    "log_format": Option("text", _choice(LOG_FORMATS), "terminal format: text or json"),
}
"""Every node option but ``home`` and ``config`` (which say where the others live)."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """The resolved options of one ``zap node`` run."""

    home: Path
    config: Path | None = None
    """The config file read (None: none)."""
    http_port: int = 0
    http_host: str = "127.0.0.1"
    quic: str = "qh3"
    halt_height: int = 0
    state_sync: bool = False
    db_max_gib: int = DB_MAX_GIB
    state_hold_blocks: int = HOLD_PINS
    log_level: str = "warning"
    log_format: str = "text"
    sources: dict[str, str] = field(default_factory=dict)
    """Option -> where its value came from: ``flag``, ``env``, ``file`` or ``default``."""


def zap_version() -> str:
    """The installed zapstack's version (``zap --version``, the banner)."""
    try:
        return version("zapstack")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def resolve_home(flag: Path | None, env: Mapping[str, str], config: Path | None) -> Path:
    """``--home`` > ``$ZAP_HOME`` > ``home`` in a named config file > ``~/.zapstack``."""
    if flag is not None:
        return flag.expanduser()
    if env.get("ZAP_HOME"):
        return Path(env["ZAP_HOME"]).expanduser()
    named = config if config is not None else _named_config(env)
    if named is not None:
        home = _load(named).get("home")
        if home is not None:
            if not isinstance(home, str) or not home:
                raise ConfigError(f"{named}: home: expected a path string")
            return Path(home).expanduser()
    return DEFAULT_HOME.expanduser()


def _named_config(env: Mapping[str, str]) -> Path | None:
    value = env.get("ZAP_CONFIG")
    return Path(value).expanduser() if value else None


def config_path(flag: Path | None, env: Mapping[str, str], home: Path) -> Path | None:
    """``--config`` > ``$ZAP_CONFIG`` > ``<home>/zap.toml`` if it exists > None."""
    named = flag.expanduser() if flag is not None else _named_config(env)
    if named is not None:
        return named
    own = home / CONFIG_NAME
    return own if own.is_file() else None


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None


def _file_values(path: Path | None, home: Path) -> dict[str, Any]:
    if path is None:
        return {}
    values = _load(path)
    unknown = sorted(set(values) - set(OPTIONS) - {"home"})
    if unknown:
        known = ", ".join(["home", *OPTIONS])
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {known})")
    if "home" in values and path == home / CONFIG_NAME:
        raise ConfigError(f"{path}: a home's own {CONFIG_NAME} cannot set home")
    values.pop("home", None)
    return values


def resolve(
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    *,
    home: Path | None = None,
    config: Path | None = None,
) -> NodeSettings:
    """Resolve every option (see the module contract); ``flags`` maps names to None when unset."""
    home_dir = resolve_home(home, env, config)
    path = config_path(config, env, home_dir)
    file = _file_values(path, home_dir)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name, opt in OPTIONS.items():
        flag = flags.get(name)
        if flag is not None:
            values[name], sources[name] = flag, "flag"
            continue
        source, where, raw = _pick(name, env, file, path)
        sources[name] = source
        if source == "default":
            values[name] = opt.default
            continue
        try:
            values[name] = opt.read(_from_env(str(raw), opt.default) if source == "env" else raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return NodeSettings(home=home_dir, config=path, sources=sources, **values)  # type: ignore[arg-type]


def _pick(
    name: str, env: Mapping[str, str], file: Mapping[str, Any], path: Path | None
) -> tuple[str, str, object]:
    """(source, where, raw value) of the first source below the flag that sets ``name``."""
    key = _env_name(name)
    if key in env and env[key] != "":
        return "env", f"{key}={env[key]!r}", env[key]
    if name in file:
        return "file", f"{path}: {name}", file[name]
    return "default", "", None
