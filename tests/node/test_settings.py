"""zap node's option sources: the documented precedence, the home, the config file, bad values."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from zapstack.errors import ConfigError
from zapstack.node.settings import DEFAULT_HOME, OPTIONS, NodeSettings, resolve

ORDER = ("flag", "env", "file", "default")
"""docs/operations.md §1: flag > environment > config file > default."""

# one value per source for every option, all different from the default and each other
VALUES: dict[str, dict[str, object]] = {
    "http_port": {"flag": 9001, "env": "9002", "file": 9003},
    "http_host": {"flag": "127.0.0.2", "env": "127.0.0.3", "file": "127.0.0.4"},
    "quic": {"flag": "aioquic", "env": "aioquic", "file": "aioquic"},
    "halt_height": {"flag": 7, "env": "8", "file": 9},
    "state_sync": {"flag": True, "env": "yes", "file": True},
    "db_max_gib": {"flag": 8, "env": "16", "file": 32},
    "state_hold_blocks": {"flag": 1000, "env": "2000", "file": 3000},
    "log_level": {"flag": "debug", "env": "info", "file": "error"},
    "log_format": {"flag": "json", "env": "json", "file": "json"},
}
EXPECTED: dict[str, dict[str, object]] = {
    "http_port": {"flag": 9001, "env": 9002, "file": 9003},
    "http_host": {"flag": "127.0.0.2", "env": "127.0.0.3", "file": "127.0.0.4"},
    "quic": {"flag": "aioquic", "env": "aioquic", "file": "aioquic"},
    "halt_height": {"flag": 7, "env": 8, "file": 9},
    "state_sync": {"flag": True, "env": True, "file": True},
    "db_max_gib": {"flag": 8, "env": 16, "file": 32},
    "state_hold_blocks": {"flag": 1000, "env": 2000, "file": 3000},
    "log_level": {"flag": "debug", "env": "info", "file": "error"},
    "log_format": {"flag": "json", "env": "json", "file": "json"},
}


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, int) else f'"{v}"'


def test_every_option_has_a_row_here() -> None:
    assert set(VALUES) == set(OPTIONS) == set(EXPECTED)
    fields = set(NodeSettings.__dataclass_fields__) - {"home", "config", "sources"}
    assert fields == set(OPTIONS)
    assert all(getattr(NodeSettings(Path()), k) == o.default for k, o in OPTIONS.items())


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("present", list(itertools.product((False, True), repeat=3)))
def test_precedence(tmp_path: Path, name: str, present: tuple[bool, bool, bool]) -> None:
    use_flag, use_env, use_file = present
    flags = {name: VALUES[name]["flag"]} if use_flag else {}
    env = {"ZAP_" + name.upper(): str(VALUES[name]["env"])} if use_env else {}
    if use_file:
        (tmp_path / "zap.toml").write_text(f"{name} = {toml_value(VALUES[name]['file'])}\n")
    s = resolve(flags, env, home=tmp_path)
    winner = next(src for src, on in zip(ORDER, (*present, True), strict=True) if on)
    want = OPTIONS[name].default if winner == "default" else EXPECTED[name][winner]
    assert getattr(s, name) == want
    assert s.sources[name] == winner
    assert s.config == ((tmp_path / "zap.toml") if use_file else None)


def test_home(tmp_path: Path) -> None:
    named = tmp_path / "etc.toml"
    named.write_text(f'home = "{tmp_path / "from-file"}"\nhttp_port = 5\n')
    assert resolve({}, {}).home == DEFAULT_HOME.expanduser()
    assert resolve({}, {"ZAP_HOME": str(tmp_path / "e")}).home == tmp_path / "e"
    assert resolve({}, {"ZAP_HOME": "x"}, home=tmp_path / "f").home == tmp_path / "f"
    s = resolve({}, {}, config=named)
    assert s.home == tmp_path / "from-file" and s.http_port == 5 and s.config == named
    s = resolve({}, {"ZAP_CONFIG": str(named), "ZAP_HOME": str(tmp_path / "e")})
    assert s.home == tmp_path / "e" and s.http_port == 5  # env home beats the file's


@pytest.mark.parametrize(
    ("env", "file", "message"),
    [
        ({"ZAP_HTTP_PORT": "x"}, "", "ZAP_HTTP_PORT='x': not an integer"),
        ({"ZAP_HTTP_PORT": "70000"}, "", "70000 is not in 0 .. 65535"),
        ({"ZAP_STATE_SYNC": "maybe"}, "", "ZAP_STATE_SYNC='maybe': 'maybe' is not a boolean"),
        ({"ZAP_LOG_FORMAT": "xml"}, "", "'xml' is not one of text, json"),
        ({"ZAP_QUIC": "quiche"}, "", "'quiche' is not one of qh3, aioquic"),
        ({}, 'http_port = "9464"', "zap.toml: http_port: expected an integer, got str"),
        ({}, "halt_height = -1", "halt_height: -1 is not in 0 .."),
        ({}, "state_sync = 1", "state_sync: 1 is not a boolean"),
        ({}, "state_hold_blocks = 0", "state_hold_blocks: 0 is not in 1 .. 1048576"),
        ({"ZAP_DB_MAX_GIB": "0"}, "", "ZAP_DB_MAX_GIB='0': 0 is not in 1 .. 65536"),
        ({}, "http_prot = 1", "unknown key 'http_prot'"),
        ({}, "http_port = ", "not TOML"),
        ({}, 'home = "/elsewhere"', "a home's own zap.toml cannot set home"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_source(
    tmp_path: Path, env: dict[str, str], file: str, message: str
) -> None:
    if file:
        (tmp_path / "zap.toml").write_text(file + "\n")
    with pytest.raises(ConfigError) as info:
        resolve({}, env, home=tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, {}, home=tmp_path, config=tmp_path / "nope.toml")


def test_empty_env_values_are_unset(tmp_path: Path) -> None:
    s = resolve({}, {"ZAP_HTTP_PORT": "", "ZAP_HOME": ""}, home=tmp_path)
    assert s.http_port == 0 and s.sources["http_port"] == "default"
