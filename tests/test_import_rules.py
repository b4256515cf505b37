"""The package picture holds: the contract is light and shared; only the runtime's fallback imports the network.

Static part: every ``import`` statement of the project's packages, read with ``ast``.
Dynamic part: a fresh interpreter that refuses ``torch`` and ``onnxruntime`` imports the
contract, and one that refuses ``torch`` imports the runtime's whole ONNX path.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("contract", "inference", "network", "exporter", "training", "evaluation", "phantoms", "benchmarks",
           "selection")


def imported_modules(package: str) -> dict[str, set[str]]:
    """file -> top-level modules it imports (anywhere in the file, lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file}: {name}" for file, names in imported_modules(package).items() for name in sorted(names)
            if name.split(".")[0] in forbidden]


def test_contract_imports_no_other_project_package_nor_torch_nor_onnxruntime():
    forbidden = tuple(p for p in PROJECT if p != "contract") + ("torch", "onnxruntime", "onnx")
    assert offenders("contract", forbidden) == []


@pytest.mark.parametrize("package", ["network", "training", "phantoms", "evaluation"])
def test_shared_side_imports_nothing_from_the_runtime(package):
    assert offenders(package, ("inference",)) == []


def test_runtime_imports_network_only_inside_the_torch_fallback():
    users = sorted(file for file, names in imported_modules("inference").items()
                   if any(n.split(".")[0] in ("network", "torch") for n in names))
    assert users == ["inference/engines/torch_engine.py"]


def test_runtime_imports_no_exporter_training_or_evaluation():
    assert offenders("inference", ("exporter", "training", "evaluation", "phantoms", "benchmarks", "selection")) == []


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
"""


def _run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_contract_imports_with_torch_and_onnxruntime_blocked():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "contract").rglob("*.py"))
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "print('ok')"
    result = _run_blocked({"torch", "onnxruntime", "onnx"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_onnx_path_imports_and_predicts_with_torch_blocked(tiny_model_dir):
    code = f"""
import numpy as np
import inference.cli, inference.layouts.batch, inference.layouts.case, inference.layouts.pipeline
from inference.engines.predictor import Predictor
predictor = Predictor.open({str(tiny_model_dir)!r}, engine="onnxruntime", device="cpu")
[pred] = predictor.predict("fetal_head", [np.full((40, 50, 3), 90, np.uint8)])
assert pred.mask.shape == (40, 50)
print("ok")
"""
    result = _run_blocked({"torch", "network"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


PROJECT_MODULES_ROOTS = PROJECT + ("review", "biometry")


def _module_names() -> dict[str, Path]:
    names = {}
    for package in PROJECT_MODULES_ROOTS:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else ():
            names[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in the file (function-level imports included).

    ``from package import name`` counts as importing ``package.name`` when that is a module (the package's
    ``__init__`` is then only passed through), else as importing ``package``."""
    modules = _module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                if len(subs) < len(node.names) and node.module in modules:
                    deps.add(node.module)
                deps |= subs
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & modules.keys()
        graph[name] = deps - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_import_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert "inference.engines.ensemble" in graph and graph["inference.layouts.batch"]
    assert import_cycles(graph) == []


def private_imports(package: str) -> list[str]:
    """``file: module.name`` for every private name (``_name``) a file imports from another project module."""
    modules = _module_names()
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != own \
                    and node.module.split(".")[0] in PROJECT_MODULES_ROOTS:
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and f"{node.module}.{a.name}" not in modules]
    return found


def test_private_import_finder_finds_one(tmp_path, monkeypatch):
    (tmp_path / "exporter").mkdir()
    (tmp_path / "exporter" / "a.py").write_text("from exporter.b import _hidden, shown\nfrom os import _exit\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert private_imports("exporter") == ["exporter/a.py: exporter.b._hidden"]


@pytest.mark.parametrize("package", ["exporter", "network"])
def test_no_module_imports_another_modules_private_name(package):
    assert private_imports(package) == []
