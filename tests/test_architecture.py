"""The core stays platform-neutral: nothing under bot/ (or storage/, config/) reaches a chat
platform library, directly or through anything it imports, nor the metrics library (the core
reports through `bot.observe`; `adapters.metrics` counts)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_LIBRARIES = ("slack_bolt", "slack_sdk", "discord", "aiohttp", "prometheus_client")
CORE_PACKAGES = ("bot", "storage", "config")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_packages_import_no_platform_library_or_adapter(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in PLATFORM_LIBRARIES or top == "adapters":
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def core_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in CORE_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def module_path(module: str) -> Path:
    path = Path(*module.split("."))
    return path / "__init__.py" if (ROOT / path).is_dir() else path.with_suffix(".py")


def test_importing_the_whole_core_loads_no_platform_library() -> None:
    modules = core_modules()
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PLATFORM_LIBRARIES!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert len(modules) > 20
    assert result.stdout.strip() == "[]"


def test_every_core_module_imports_first() -> None:
    """No import cycle: each module imports before any other of ours (a cycle only breaks
    when one of its modules is the first imported). One interpreter loads the libraries the
    core imports, then forks a child per module, which starts with none of ours loaded and
    spends no time loading the libraries: 8 s where an interpreter per module took 29 s."""
    modules = core_modules()
    ours = {*CORE_PACKAGES, "adapters", "tests", "bench", "__future__"}
    libraries = sorted(
        {
            name
            for module in modules
            for name in imported_modules(ROOT / module_path(module))
            if name.split(".")[0] not in ours
        }
    )
    script = (
        "import importlib, os\n"
        f"for name in {libraries!r}: importlib.import_module(name)\n"
        f"for name in {modules!r}:\n"
        "    if os.fork() == 0:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except BaseException as error:\n"
        "            print(name, type(error).__name__, error, flush=True)\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert len(modules) > 20 and "sqlalchemy" in libraries
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("adapter", "foreign"),
    [
        ("slack", ("discord",)),
        ("discord", ("slack_bolt", "slack_sdk")),
        ("console", PLATFORM_LIBRARIES),
    ],
)
def test_each_adapter_speaks_only_to_its_own_platform(
    adapter: str, foreign: tuple[str, ...]
) -> None:
    paths = sorted((ROOT / "adapters").glob(f"{adapter}.py")) or sorted(
        (ROOT / "adapters" / adapter).rglob("*.py")
    )
    assert paths
    # adapters.http is plumbing every HTTP adapter may share (ASGI types, uvicorn), and
    # adapters.connection every adapter that keeps a connection up (its log lines).
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in imported_modules(path)
        if name.split(".")[0] in foreign
        or (
            name.startswith("adapters.")
            and name.split(".")[1] not in (adapter, "http", "connection")
        )
    ]
    assert offenders == []
