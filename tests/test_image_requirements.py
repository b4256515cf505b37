"""What the image's Python code imports is what its requirements files install.

The default image installs requirements.txt (+ the CUDA wheels); the WITH_TORCH=1 image adds
requirements-torch.txt for the PyTorch fallback (inference.engines.torch_engine, network.*). The
images are built and run by the container test (test/run_test.sh, make test); this checks,
without building, what an image would miss: it walks the import statements of every module
of the runtime packages (modules are also imported by name, e.g. the layouts, so all are
roots), function-level imports included, optional ``try: import`` excepted, following the
project's own packages; each third-party import must belong to a distribution pinned in the
right file, and every project package reached must be one the Dockerfile copies.

The torch image's torch need not be the dev venv's (the fallback reads its weights from the
ONNX graphs; the image needs the CUDA 12 build, the dev venv has a CUDA 13 one): its pins are
checked against what the fallback imports and against each other, not against the dev pins,
except for the libraries that define the network's layers and read the weights.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


def _pins(name: str) -> dict[str, str]:
    """Distribution -> version pinned with == in one file (its -r includes not followed)."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            dist, version = line.split("==", 1)
            found[_normalize(re.split(r"[\[ ]", dist, maxsplit=1)[0])] = version.strip()
    return found


def _fallback_distributions() -> set[str]:
    """The distributions the fallback path imports beyond requirements.txt."""
    roots = [m for m in _package_modules("inference", "contract", "network") if m not in OPTIONAL_ENTRY_POINTS]
    _, third = _closure(roots, stop=set(OPTIONAL_ENTRY_POINTS))
    distributions = importlib.metadata.packages_distributions()
    return {_normalize(d) for top in third for d in distributions.get(top, [top])} - _pinned("requirements.txt")


def _requirements_of(dist: str) -> list[Requirement]:
    """The unconditional requirements the installed ``dist`` declares (no extras, no markers)."""
    found = []
    for text in importlib.metadata.requires(dist) or []:
        requirement = Requirement(text)
        if requirement.marker is None and not requirement.extras:
            found.append(requirement)
    return found


def test_torch_pins_are_what_the_fallback_imports_or_its_libraries_need():
    """No dead pin: each distribution of requirements-torch.txt is imported by the fallback, or
    required by one it imports (torchvision: by timm and segmentation-models-pytorch)."""
    imported = _fallback_distributions()
    assert {"torch", "onnx", "segmentation-models-pytorch", "timm"} <= imported, imported
    needed = set(imported)
    for dist in imported:
        needed |= {_normalize(r.name) for r in _requirements_of(dist)}
    dead = sorted(set(_pins("requirements-torch.txt")) - needed)
    assert not dead, f"requirements-torch.txt pins what the fallback neither imports nor needs: {dead}"


def test_network_libraries_are_the_tested_ones():
    """The libraries that build the network's layers and read the weights back (and so decide
    the state_dict keys) are the versions the dev venv tests the fallback with; torch and
    torchvision may differ (the image needs PyPI's CUDA 12 build)."""
    dev, image = _pins("requirements-dev.txt"), _pins("requirements-torch.txt")
    differing = {d: (image[d], dev.get(d)) for d in ("segmentation-models-pytorch", "timm", "onnx")
                 if image.get(d) != dev.get(d)}
    assert not differing, f"requirements-torch.txt vs requirements-dev.txt: {differing}"


@pytest.mark.parametrize("name", ["requirements-torch.txt", "requirements-dev.txt"])
def test_torchvision_is_the_release_of_the_torch_pin(name):
    """torchvision 0.N.p is built for torch 2.(N-15).p (PyTorch's compatibility table since 2.0)."""
    pins = _pins(name)
    major, minor, patch = (int(x) for x in pins["torch"].split("+")[0].split(".")[:3])
    assert major == 2, pins["torch"]
    assert pins["torchvision"] == f"0.{minor + 15}.{patch}", (
        f"{name}: torch {pins['torch']} goes with torchvision 0.{minor + 15}.{patch}, not {pins['torchvision']}")


def test_torch_image_pins_satisfy_each_others_requirements():
    """What smp, timm and onnx (installed here at the pinned versions) declare accepts the
    torch image's pins (torch 2.9.1, numpy of requirements.txt, ...)."""
    pins = {**_pins("requirements.txt"), **_pins("requirements-torch.txt")}
    conflicts = []
    for dist in ("segmentation-models-pytorch", "timm", "onnx"):
        assert importlib.metadata.version(dist) == pins[dist], f"the dev venv's {dist} is not the pinned one"
        for requirement in _requirements_of(dist):
            version = pins.get(_normalize(requirement.name))
            if version is not None and version not in requirement.specifier:
                conflicts.append(f"{dist} requires {requirement}, pinned {version}")
    assert not conflicts, conflicts


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-torch.txt", "requirements-cuda.txt",
                                  "requirements-ray.txt"])
def test_every_requirement_is_pinned(name):
    loose = [line for line in (ROOT / name).read_text().splitlines()
             if line.split("#", 1)[0].strip() and not line.startswith("-r ") and "==" not in line]
    assert not loose, f"{name}: unpinned lines {loose}"
