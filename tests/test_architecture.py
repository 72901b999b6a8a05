"""The core stays platform-neutral: nothing under bot/ (or storage/, config/) reaches a chat
platform library, directly or through anything it imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_LIBRARIES = ("slack_bolt", "slack_sdk", "discord", "aiohttp")
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
    """No import cycle: each module imports in a fresh interpreter, before any other (a
    cycle only breaks when one of its modules is the first imported)."""
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in core_modules()
    }
    failed = {}
    for name, process in running.items():
        _, errors = process.communicate(timeout=120)
        if process.returncode != 0:
            failed[name] = errors.strip().splitlines()[-1]
    assert failed == {}


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
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in imported_modules(path)
        if name.split(".")[0] in foreign
        or (name.startswith("adapters.") and name.split(".")[1] not in (adapter,))
    ]
    assert offenders == []
