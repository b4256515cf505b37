"""What the image's Python code imports is what its requirements files install.

The default image installs requirements.txt (+ the CUDA wheels); the WITH_TORCH=1 image adds
requirements-torch.txt for the PyTorch fallback (inference.engines.torch_engine, network.*). Building
the torch image in CI is too heavy (PyPI's torch is a CUDA 13 build with ~4 GB of wheels), so
this walks the import statements instead: every module of the runtime packages (modules
are also imported by name, e.g. the layouts, so all are roots), function-level imports
included, optional ``try: import`` excepted, following the project's own packages; each
third-party import must belong to a distribution pinned in the right file, and every
project package reached must be one the Dockerfile copies.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_BOUNDARY = "inference.engines.torch_engine"
#: Optional entry points the image does not run; their own requirements file pins what they add.
OPTIONAL_ENTRY_POINTS = {"inference.scale.ray_job": "requirements-ray.txt"}


def _pinned(*files: str) -> set[str]:
    """Normalized distribution names pinned with == in the files (following -r includes)."""
    names: set[str] = set()
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                names |= _pinned(line[3:].strip())
            elif "==" in line:
                names.add(_normalize(re.split(r"[\[=<>~! ]", line, maxsplit=1)[0]))
    return names


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _image_packages() -> set[str]:
    """The top-level project folders the Dockerfile copies into the image."""
    match = re.search(r"for d in ([\w ]+); do", (ROOT / "Dockerfile").read_text())
    assert match, "Dockerfile: the loop copying the project folders was not found"
    return set(match.group(1).split())


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_modules(*packages: str) -> list[str]:
    """Every module of the given top-level project packages that exist."""
    modules = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside ``try: ... except ImportError`` is optional."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                names = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in names or "ModuleNotFoundError" in names:
                    return True
    return False


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from pkg import submodule` imports the submodule too.
            found |= {f"{target}.{alias.name}" for alias in node.names
                      if _module_file(f"{target}.{alias.name}")}
    return found


def _closure(roots: list[str], stop: set[str]) -> tuple[set[str], set[str]]:
    """(project modules reached, third-party top-level modules imported)."""
    project = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    seen: set[str] = set()
    third: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module in stop:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, f"{module}: no such project module"
        for name in _imports(module, path):
            top = name.split(".")[0]
            if top == "__future__" or top in sys.stdlib_module_names:
                continue
            if top in project:
                parts = name.split(".")
                # Each parent package runs its __init__ first.
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)
                         if _module_file(".".join(parts[:i]))]
            else:
                third.add(top)
    return seen, third


def _unpinned(third: set[str], pinned: set[str]) -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for top in sorted(third):
        dists = {_normalize(d) for d in distributions.get(top, [top])}
        if not dists & pinned:
            missing.append(f"{top} (from {sorted(dists)})")
    return missing


def test_default_image_imports_only_requirements_txt():
    optional = set(OPTIONAL_ENTRY_POINTS)
    roots = [m for m in _package_modules("inference", "contract") if m != TORCH_BOUNDARY and m not in optional]
    modules, third = _closure(roots, stop={TORCH_BOUNDARY, *optional})
    assert TORCH_BOUNDARY not in modules
    assert not {"torch", "onnx"} & third, f"the ONNX Runtime path must not import torch/onnx: {third}"
    missing = _unpinned(third, _pinned("requirements.txt"))
    assert not missing, f"imported by the default image but not pinned in requirements.txt: {missing}"
    outside = {m.split(".")[0] for m in modules} - _image_packages()
    assert not outside, f"packages reached but not copied by the Dockerfile: {outside}"


def test_torch_fallback_imports_only_its_requirements():
    roots = [m for m in _package_modules("inference", "contract", "network") if m not in OPTIONAL_ENTRY_POINTS]
    modules, third = _closure(roots, stop=set(OPTIONAL_ENTRY_POINTS))
    assert {TORCH_BOUNDARY, "network.weights"} <= modules
    assert {"torch", "onnx"} <= third, third
    missing = _unpinned(third, _pinned("requirements.txt", "requirements-torch.txt"))
    assert not missing, (
        f"imported by the PyTorch fallback but pinned in neither requirements.txt nor "
        f"requirements-torch.txt: {missing}")
    outside = {m.split(".")[0] for m in modules} - _image_packages()
    assert not outside, f"packages reached but not copied by the Dockerfile: {outside}"


@pytest.mark.parametrize("module", sorted(OPTIONAL_ENTRY_POINTS))
def test_optional_entry_points_import_only_their_requirements(module):
    _, third = _closure([module], stop={TORCH_BOUNDARY})
    missing = _unpinned(third, _pinned("requirements.txt", OPTIONAL_ENTRY_POINTS[module]))
    assert not missing, f"{module} imports {missing}, pinned in neither requirements.txt nor {OPTIONAL_ENTRY_POINTS[module]}"


def test_torch_pins_match_the_dev_pins():
    """requirements-torch.txt pins the same versions the exporter was tested with."""
    def pins(name: str) -> dict[str, str]:
        found = {}
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                dist, version = line.split("==", 1)
                found[_normalize(dist)] = version.strip()
        return found

    dev, torch_pins = pins("requirements-dev.txt"), pins("requirements-torch.txt")
    differing = {d: (v, dev.get(d)) for d, v in torch_pins.items() if dev.get(d) != v}
    assert not differing, f"requirements-torch.txt differs from requirements-dev.txt: {differing}"


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-torch.txt", "requirements-cuda.txt",
                                  "requirements-ray.txt"])
def test_every_requirement_is_pinned(name):
    loose = [line for line in (ROOT / name).read_text().splitlines()
             if line.split("#", 1)[0].strip() and not line.startswith("-r ") and "==" not in line]
    assert not loose, f"{name}: unpinned lines {loose}"
