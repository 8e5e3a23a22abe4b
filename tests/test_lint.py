"""The linter is part of the test run, so style and import errors fail CI like any other test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*cmd, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports_streamlit(path: Path) -> bool:
    return any(line.strip().startswith(("import streamlit", "from streamlit")) for line in path.read_text().splitlines())


def test_explainers_do_not_import_streamlit() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "explainers").rglob("*.py") if _imports_streamlit(path)]
    assert offenders == []


def test_the_scheduler_and_its_worker_process_do_not_import_streamlit() -> None:
    """The worker process must not load Streamlit, and the scheduler is tested without a page."""
    assert [name for name in ("scheduler.py", "worker.py", "map_request.py")
            if _imports_streamlit(ROOT / "dashboard" / name)] == []
    assert _imports_streamlit(ROOT / "dashboard" / "compute.py")  # the check sees an import when there is one


CACHE_MODULE = "dashboard/compute.py"  # the one module of the page that decides what is remembered (docs/DESIGN.md)


def _streamlit_caches(path: Path) -> list[int]:
    """Lines of `path` that use Streamlit's caches: `st.cache_data` / `st.cache_resource` (any alias of the
    module), or `cache_data` / `cache_resource` imported from streamlit."""
    import ast

    names = ("cache_data", "cache_resource")

    def caches(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr in names
        return (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamlit")
                and any(alias.name in names for alias in node.names))

    return [node.lineno for node in ast.walk(ast.parse(path.read_text())) if caches(node)]


def test_caching_lives_in_one_module_of_the_page() -> None:
    """Every `st.cache_data` / `st.cache_resource` of `dashboard/` is in `dashboard/compute.py` (issue 30, item 3):
    a view asks compute for what it wants remembered."""
    offenders = {str(path.relative_to(ROOT)): _streamlit_caches(path) for path in sorted((ROOT / "dashboard").rglob("*.py"))
                 if str(path.relative_to(ROOT)) != CACHE_MODULE}
    assert {name: lines for name, lines in offenders.items() if lines} == {}
    assert _streamlit_caches(ROOT / CACHE_MODULE)  # the check sees a cache when there is one


def _module_name(package: Path, path: Path) -> str:
    """"registry", "methods.cams", "methods" (a subpackage's `__init__`): the name inside the package."""
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _package_imports(package: Path) -> dict[str, set[str]]:
    """module → the package's modules it imports, at the top or inside functions (both tie them together);
    subpackages included (`methods.cams`)."""
    import ast

    modules = {_module_name(package, path) for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package.name:
                inner = node.module.partition(".")[2]
                names = {f"{inner}.{a.name}" if inner else a.name for a in node.names}
                found |= {name for name in names if name in modules} or ({inner} & modules)
            elif isinstance(node, ast.Import):
                found |= {a.name.partition(".")[2] for a in node.names
                          if a.name.partition(".")[2] in modules and a.name.startswith(f"{package.name}.")}
        name = _module_name(package, path)
        graph[name] = found - {name, "__init__"}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles: every module that reaches itself, with the path it takes."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append(path)
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_library_has_no_import_circle() -> None:
    """Modules of `explainers` import one another one way only (batch → ray_engine → batch_work, and
    model_file_loader above model_files and torch_files): a circle makes both sides one module in disguise."""
    graph = _package_imports(ROOT / "explainers")
    assert _circles(graph) == []
    assert {"methods.cams", "methods.xrai"} <= graph["registry"] and "methods.cams" in graph["methods.segxrescam"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})  # the check finds a circle when there is one


def _reassigned_and_mutated(source: str) -> tuple[list[str], list[str]]:
    """Module-level names assigned more than once, and module-level calls that change a constant in place
    (`X.update(...)`, `X.append(...)` ...)."""
    import ast

    seen: dict[str, int] = {}
    mutated = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            if isinstance(target, ast.Name):
                seen[target.id] = seen.get(target.id, 0) + (2 if isinstance(node, ast.AugAssign) else 1)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute):
            owner = node.value.func.value
            if isinstance(owner, ast.Name) and owner.id.lstrip("_").isupper():
                mutated.append(f"{owner.id}.{node.value.func.attr}")
    return [name for name, count in seen.items() if count > 1], mutated


def test_each_session_state_constant_is_defined_once() -> None:
    """`dashboard/state.py` names every key, choice and default in one place: no constant is reassigned or
    updated further down the module."""
    assert _reassigned_and_mutated((ROOT / "dashboard" / "state.py").read_text(encoding="utf-8")) == ([], [])
    assert _reassigned_and_mutated("A = (1,)\nD = {}\nA = (*A, 2)\nD.update({1: 2})\n") == (["A"], ["D.update"])


def _top_level_imports(folder: Path) -> dict[str, set[str]]:
    """file → the top-level packages it imports (at the top or inside functions)."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_dependency_direction() -> None:
    """dashboard → explainers and models; models → explainers at most; explainers imports neither; nothing of
    the product imports the tests or the benchmarks (they are leaves)."""
    banned = {"explainers": {"dashboard", "models", "tests", "benchmarks"},
              "models": {"dashboard", "tests", "benchmarks"},
              "dashboard": {"tests", "benchmarks"}}
    offenders = sorted(f"{file} imports {name}" for package, names in banned.items()
                       for file, imported in _top_level_imports(ROOT / package).items() for name in imported & names)
    assert offenders == []
    assert "explainers" in _top_level_imports(ROOT / "dashboard")["dashboard/compute.py"]  # the check sees imports
