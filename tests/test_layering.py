"""The layering check: imports go only downward, IO stays at the edges, modules stay small.

Pure ``ast`` + stdlib over ``src/zapstack`` (plus one ``ruff`` subprocess for
complexity).  Rules, each failure named ``src/zapstack/<path>:<line>: [rule]``:

* ``layer`` -- a module imports a zapstack package of a higher layer, or of the
  same rank but another package (:data:`LAYERS`), unless :data:`SIBLING_ORDER`
  allows that one edge (today only ``benchmarks`` -> ``devnet``).
  Every import counts: module level, function-local, ``TYPE_CHECKING``,
  relative, and ``importlib.import_module("...")`` with a literal name.
* ``io`` -- a sans-IO core module (:data:`CORES`, minus the transport adapter
  modules :data:`TRANSPORT_ADAPTERS`) imports one of :data:`IO_MODULES`.
* ``size`` -- a module over :data:`MAX_LINES` lines (``wc -l``).
* ``function-length`` / ``C901`` -- in node/, devnet/, lightclient/: a function
  over :data:`MAX_FUNCTION_LINES` lines, or a cyclomatic complexity over
  :data:`MAX_COMPLEXITY` (``ruff --select C901``).

Known offenders are listed with a reason in :data:`EXCEPTIONS` (size, outside
the node family) and :data:`PENDING` (node family); an entry that no longer
violates fails the test too, so the tables shrink as modules are split.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "zapstack"

LAYERS: dict[str, int] = {
    "errors": 0,
    "zap": 1,
    "crypto": 2,
    "zapdb": 3,
    "transport": 4,
    "mempool": 5,
    "verify": 5,
    "consensus": 5,
    "producer": 6,
    "bootstrap": 6,
    "dht": 6,
    "testing": 7,
    "conformance": 7,
    "node": 8,
    "lightclient": 9,
    "devnet": 10,
    "benchmarks": 10,
    "cli": 11,
}
"""Top-level package (or module) of ``zapstack`` -> rank; imports go to a lower rank."""

SIBLING_ORDER: dict[str, frozenset[str]] = {"benchmarks": frozenset({"devnet"})}
"""Same-rank package -> the same-rank packages it may import (a real downward
dependency among siblings; must stay acyclic).  The end-to-end row of ``zap
bench`` (``benchmarks/e2e*.py``) runs a devnet with the devnet's own tools."""

ROOT_MAY_IMPORT = frozenset({"errors"})
"""What ``zapstack/__init__.py`` (the facade) may import."""

IO_MODULES = frozenset({"asyncio", "socket", "qh3", "aioquic", "uvloop", "aiohttp"})
CORES = frozenset(
    {"errors", "zap", "crypto", "zapdb", "transport", "mempool", "verify", "consensus"}
    | {"producer", "bootstrap", "dht"}
)
"""Sans-IO packages: bytes, events and ``now`` in; no event loop, no sockets."""
TRANSPORT_ADAPTERS = frozenset(
    {
        "transport/driver.py",
        "transport/peer.py",
        "transport/qh3_adapter.py",
        "transport/aioquic_adapter.py",
        "transport/patch.py",
        "transport/bindings.py",
    }
)
"""The transport modules that run the sans-IO sessions over real QUIC."""

NODE_FAMILY = ("node/", "devnet/", "lightclient/")
"""Where the function rules apply."""
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15

EXCEPTIONS: dict[str, str] = {}
"""Modules outside the node family allowed over MAX_LINES: path -> reason."""

PENDING: dict[str, str] = {}
"""Node-family offenders: ``path`` (size), ``path::qualname`` (function length) or
``path::qualname C901`` (complexity) -> reason."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule."""

    path: str
    """Relative to ``src/zapstack``."""
    line: int
    rule: str
    detail: str
    key: str
    """What an EXCEPTIONS / PENDING entry names to allow it."""

    def __str__(self) -> str:
        return f"src/zapstack/{self.path}:{self.line}: [{self.rule}] {self.detail}"


def _module_name(path: str) -> list[str]:
    parts = ["zapstack", *path.removesuffix(".py").split("/")]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_of(path: str, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every imported module name in ``tree`` (relative imports resolved), with its line."""
    name = _module_name(path)
    package = name if path.endswith("__init__.py") else name[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            if module == "zapstack":  # `from zapstack import node` names a package
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            yield node.lineno, node.args[0].value  # type: ignore[attr-defined]


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return (
        name in ("import_module", "__import__")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _layer_of(path: str) -> str:
    first = path.split("/")[0]
    return first.removesuffix(".py")


def _layer_violation(path: str, line: int, name: str) -> Violation | None:
    parts = name.split(".")
    if parts[0] != "zapstack" or len(parts) < 2:
        return None
    own, target = _layer_of(path), parts[1]
    if target == own or (own == "__init__" and target in ROOT_MAY_IMPORT):
        return None
    if own == "__init__":
        detail = f"the zapstack facade imports {name} (may import only {sorted(ROOT_MAY_IMPORT)})"
        return Violation(path, line, "layer", detail, path)
    if own not in LAYERS or target not in LAYERS:
        unknown = own if own not in LAYERS else target
        detail = f"package {unknown!r} has no layer: add it to LAYERS (import of {name})"
        return Violation(path, line, "layer", detail, path)
    mine, theirs = LAYERS[own], LAYERS[target]
    if theirs < mine or target in SIBLING_ORDER.get(own, frozenset()):
        return None
    relation = "a higher layer" if theirs > mine else "a sibling layer"
    detail = f"{own} (rank {mine}) imports {name}: {relation} (rank {theirs})"
    return Violation(path, line, "layer", detail, path)


def check_source(path: str, source: str) -> list[Violation]:
    """Every rule but complexity, for one module at ``src/zapstack/<path>``."""
    tree = ast.parse(source, filename=path)
    out: list[Violation] = []
    sans_io = _layer_of(path) in CORES and path not in TRANSPORT_ADAPTERS
    for line, name in imports_of(path, tree):
        violation = _layer_violation(path, line, name)
        if violation is not None:
            out.append(violation)
        if sans_io and name.split(".")[0] in IO_MODULES:
            detail = f"sans-IO core module imports {name} (IO belongs in an adapter)"
            out.append(Violation(path, line, "io", detail, path))
    lines = source.count("\n")
    if lines > MAX_LINES:
        out.append(Violation(path, 1, "size", f"{lines} lines > {MAX_LINES}", path))
    if path.startswith(NODE_FAMILY):
        out += _long_functions(path, tree)
    return out


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Function]]:
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.<locals>.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _long_functions(path: str, tree: ast.AST) -> Iterator[Violation]:
    for qualname, node in _functions(tree):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            detail = f"{qualname} is {length} lines > {MAX_FUNCTION_LINES}"
            key = f"{path}::{qualname}"
            yield Violation(path, node.lineno, "function-length", detail, key)


def complexity(root: Path, targets: list[Path]) -> list[Violation]:
    """``ruff --select C901`` over ``targets`` (paths under ``root``) as violations."""
    if not targets:
        return []
    ruff = Path(sys.executable).parent / "ruff"
    cmd = [
        str(ruff), "check", "--select", "C901", "--no-fix", "--output-format", "json",
        "--config", f"lint.mccabe.max-complexity={MAX_COMPLEXITY}", *map(str, targets),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed ({proc.returncode}): {proc.stderr}")
    out = []
    for item in json.loads(proc.stdout or "[]"):
        path = Path(item["filename"]).resolve().relative_to(root.resolve()).as_posix()
        row = item["location"]["row"]
        tree = ast.parse(Path(item["filename"]).read_text(encoding="utf-8"))
        qualname = next((q for q, n in _functions(tree) if n.lineno == row), "?")
        key = f"{path}::{qualname} C901"
        out.append(Violation(path, row, "C901", f"{qualname}: {item['message']}", key))
    return out


@functools.cache
def all_violations() -> tuple[Violation, ...]:
    """Every violation in ``src/zapstack`` (tables not applied)."""
    out: list[Violation] = []
    for file in sorted(SRC.rglob("*.py")):
        path = file.relative_to(SRC).as_posix()
        out += check_source(path, file.read_text(encoding="utf-8"))
    targets = [SRC / d.rstrip("/") for d in NODE_FAMILY if (SRC / d.rstrip("/")).is_dir()]
    out += complexity(SRC, targets)
    return tuple(out)


def _allowed(v: Violation) -> bool:
    if v.rule == "size":
        return v.key in (PENDING if v.path.startswith(NODE_FAMILY) else EXCEPTIONS)
    return v.rule in ("function-length", "C901") and v.key in PENDING


def _report(violations: list[Violation]) -> str:
    return "\n".join(str(v) for v in violations)


# ----------------------------------------------------------------- the tree


def test_imports_go_only_downward() -> None:
    bad = [v for v in all_violations() if v.rule == "layer"]
    assert not bad, _report(bad)


def test_sans_io_cores_import_no_io() -> None:
    bad = [v for v in all_violations() if v.rule == "io"]
    assert not bad, _report(bad)


def test_modules_stay_small() -> None:
    bad = [v for v in all_violations() if v.rule == "size" and not _allowed(v)]
    assert not bad, _report(bad)


def test_node_family_functions_stay_short_and_simple() -> None:
    bad = [v for v in all_violations() if v.rule in ("function-length", "C901")]
    bad = [v for v in bad if not _allowed(v)]
    assert not bad, _report(bad)


def test_exception_tables_are_honest() -> None:
    live = {v.key for v in all_violations()}
    stale = [f"EXCEPTIONS[{k!r}]" for k in EXCEPTIONS if k not in live]
    stale += [f"PENDING[{k!r}]" for k in PENDING if k not in live]
    assert not stale, "no longer violating, remove: " + ", ".join(stale)
    misplaced = [k for k in EXCEPTIONS if k.startswith(NODE_FAMILY)]
    misplaced += [k for k in PENDING if not k.startswith(NODE_FAMILY)]
    assert not misplaced, f"node-family entries go in PENDING, others in EXCEPTIONS: {misplaced}"


def test_sibling_order_is_acyclic_and_within_a_rank() -> None:
    for pkg, allowed in SIBLING_ORDER.items():
        for other in allowed:
            assert LAYERS[other] == LAYERS[pkg], f"{pkg} -> {other} is not a sibling edge"
            assert pkg not in SIBLING_ORDER.get(other, frozenset()), f"cycle {pkg} <-> {other}"


# ------------------------------------------------------------ the checker


def rules(path: str, source: str) -> list[tuple[str, int]]:
    return [(v.rule, v.line) for v in check_source(path, source)]


def test_checker_catches_planted_layer_violations() -> None:
    assert rules("zap/x.py", "from zapstack.errors import ZapError\n") == []
    assert rules("zap/x.py", "import zapstack.zapdb\n") == [("layer", 1)]
    assert rules("mempool/x.py", "from zapstack.verify import ThreadVerifier\n") == [("layer", 1)]
    local = "def f():\n    from zapstack.node.node import Node\n    return Node\n"
    assert rules("dht/x.py", local) == [("layer", 2)]
    assert rules("node/adapters/x.py", "from ...cli import app\n") == [("layer", 1)]
    assert rules("zapdb/x.py", "from zapstack import node\n") == [("layer", 1)]
    assert rules("zap/x.py", "import importlib\nimportlib.import_module('zapstack.cli')\n") == [
        ("layer", 2)
    ]
    assert rules("nowhere/x.py", "import zapstack.zap\n") == [("layer", 1)]
    assert rules("__init__.py", "from zapstack.zap import Signer\n") == [("layer", 1)]
    assert rules("node/x.py", "from ..conformance import frames\nimport zapstack.zap\n") == []


def test_checker_catches_planted_io_imports() -> None:
    assert rules("consensus/x.py", "import asyncio\n") == [("io", 1)]
    assert rules("transport/session2.py", "from qh3.asyncio import connect\n") == [("io", 1)]
    assert rules("dht/x.py", "def f():\n    import socket\n") == [("io", 2)]
    assert rules("transport/driver.py", "import asyncio\n") == []
    assert rules("node/x.py", "import asyncio\nimport uvloop\n") == []


def test_checker_catches_planted_size_and_long_functions() -> None:
    assert rules("zap/x.py", "x = 1\n" * MAX_LINES) == []
    assert rules("zap/x.py", "x = 1\n" * (MAX_LINES + 1)) == [("size", 1)]
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    assert rules("node/x.py", f"class A:\n    def run(self):\n{body}") == []
    long = f"class A:\n    def run(self):\n{body}        y = 0\n"
    assert [v.key for v in check_source("devnet/x.py", long)] == ["devnet/x.py::A.run"]
    assert rules("zap/x.py", long) == []  # function rules hold in the node family only


def test_checker_catches_planted_complexity(tmp_path: Path) -> None:
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(MAX_COMPLEXITY))
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "x.py").write_text(f"def tangled(x):\n{branches}    return -1\n")
    (tmp_path / "node" / "y.py").write_text("def plain(x):\n    return x\n")
    found = complexity(tmp_path, [tmp_path / "node"])
    assert [(v.key, v.line, v.rule) for v in found] == [("node/x.py::tangled C901", 1, "C901")]
    assert str(found[0]).startswith("src/zapstack/node/x.py:1: [C901] tangled")
