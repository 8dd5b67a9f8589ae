"""The pure layers stay pure: no event loop, no sockets, no kernel, no daemon.

``rib/`` and ``policy/`` are the routing core: only the standard library and each other.
``bgpd/wire/`` is the codec: it may use the core's types and itself, but nothing of the daemon
(sessions, config, ...) and no I/O. ``fib/model.py`` and ``fib/memory.py`` (the kernel-free
parts of the FIB) must not need an event loop either.

Checked statically with ``ast`` (imports anywhere in a module, including inside functions and
``if TYPE_CHECKING:`` blocks, plus literal ``importlib.import_module``/``__import__`` calls), so
nothing is imported to run the check.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Never in a pure layer: the event loop, raw I/O, the netlink library, the kernel writer.
IO_MODULES = {"asyncio", "socket", "selectors", "ssl", "pyroute2", "fib"}
CORE_ALLOWED = {"rib", "policy"}  # besides the standard library
STDLIB = set(sys.stdlib_module_names)


def _package_of(path: Path) -> list[str]:
    """The package a module's relative imports start from (the same for ``__init__.py``)."""
    return list(path.relative_to(ROOT).parts[:-1])


def imported_modules(source: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every module the source imports."""
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_of(path)
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                if node.level - 1 > len(pkg):
                    yield node.lineno, "<relative import beyond the top level>"
                    continue
                prefix = ".".join(base)
            else:
                prefix = ""
            mod = ".".join(p for p in (prefix, node.module or "") if p)
            if node.module is None:
                # `from . import x` / `from pkg import x`: x may be a submodule.
                for alias in node.names:
                    yield node.lineno, f"{mod}.{alias.name}" if mod else alias.name
            else:
                yield node.lineno, mod
                if mod == "bgpd":
                    # `from bgpd import wire` names the submodule.
                    for alias in node.names:
                        yield node.lineno, f"bgpd.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                yield node.lineno, arg.value


def core_violations(source: str, path: Path) -> list[str]:
    """rib/ and policy/: the standard library, rib and policy only."""
    bad = []
    for line, mod in imported_modules(source, path):
        top = mod.split(".")[0]
        if top in IO_MODULES or not (top in STDLIB or top in CORE_ALLOWED):
            bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
    return bad


def wire_violations(source: str, path: Path) -> list[str]:
    """bgpd/wire/: no I/O, and of bgpd only bgpd.wire."""
    bad = []
    for line, mod in imported_modules(source, path):
        parts = mod.split(".")
        top = parts[0]
        if top in IO_MODULES or top.startswith("<"):
            bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
        elif top == "bgpd" and parts[:2] != ["bgpd", "wire"] and mod != "bgpd":
            bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod} (only bgpd.wire is allowed)")
    return bad


def no_asyncio_violations(source: str, path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: imports {mod}"
        for line, mod in imported_modules(source, path)
        if mod.split(".")[0] == "asyncio"
    ]


def py_files(*dirs: str) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out.extend(sorted((ROOT / d).rglob("*.py")))
    return out


CORE_FILES = py_files("rib", "policy")
WIRE_FILES = py_files("bgpd/wire")
FIB_PURE_FILES = [p for p in (ROOT / "fib" / "model.py", ROOT / "fib" / "memory.py") if p.exists()]


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_the_layers_exist() -> None:
    names = {_id(p) for p in CORE_FILES}
    assert {"rib/prefix.py", "rib/engine.py", "policy/filters.py"} <= names
    assert WIRE_FILES, "bgpd/wire has no modules"


@pytest.mark.parametrize("path", CORE_FILES, ids=_id)
def test_core_imports_only_stdlib_rib_and_policy(path: Path) -> None:
    assert core_violations(path.read_text(), path) == []


@pytest.mark.parametrize("path", WIRE_FILES, ids=_id)
def test_wire_imports_no_io_and_no_daemon(path: Path) -> None:
    assert wire_violations(path.read_text(), path) == []


@pytest.mark.parametrize("path", FIB_PURE_FILES or [None], ids=lambda p: _id(p) if p else "absent")
def test_pure_fib_modules_have_no_event_loop(path: Path | None) -> None:
    if path is None:
        pytest.skip("fib/model.py and fib/memory.py do not exist yet")
    assert no_asyncio_violations(path.read_text(), path) == []


# --- the checker itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "source", "ok"),
    [
        ("rib/x.py", "import ipaddress\nfrom rib.prefix import Afi\nfrom policy import filters\n", True),
        ("rib/x.py", "from . import prefix\nfrom .route import Path\n", True),
        ("rib/x.py", "import asyncio\n", False),
        ("rib/x.py", "def f():\n    import socket\n", False),
        (
            "rib/x.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bgpd.wire import x\n",
            False,
        ),
        ("policy/x.py", "import structlog\n", False),
        ("policy/x.py", "from fib.model import Route\n", False),
        ("policy/x.py", "from .. import bgpd\n", False),
        ("rib/x.py", "import importlib\nimportlib.import_module('pyroute2')\n", False),
        ("bgpd/wire/x.py", "from bgpd.wire.errors import BgpError\nfrom rib.attrs import PathAttrs\n", True),
        ("bgpd/wire/x.py", "from . import errors\nfrom .messages import MsgType\nimport struct\n", True),
        ("bgpd/wire/x.py", "from bgpd import wire\n", True),
        ("bgpd/wire/x.py", "from bgpd.config import model\n", False),
        ("bgpd/wire/x.py", "from bgpd import fsm\n", False),
        ("bgpd/wire/x.py", "from .. import connection\n", False),
        ("bgpd/wire/x.py", "from ..session import Peer\n", False),
        ("bgpd/wire/x.py", "import socket\n", False),
        ("bgpd/wire/x.py", "import fib\n", False),
    ],
)
def test_checker(where: str, source: str, ok: bool) -> None:
    path = ROOT / where
    check = wire_violations if where.startswith("bgpd/wire") else core_violations
    assert (check(source, path) == []) is ok
