"""The shape of the code: no import cycles, local imports that say why, no torch in the web process,
and none in the tests of labeling, pages, the API and access.

The first two read the source with `ast` and run none of it.
"""

import ast
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("labeling", "training", "webapp")
WEB_PROCESS = """
import sys

import django

django.setup()
import webapp.wsgi
from django.urls import URLResolver, get_resolver


def callbacks(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from callbacks(pattern.url_patterns)
        else:
            yield pattern.callback


list(callbacks(get_resolver().url_patterns))
import labeling.admin, labeling.api, labeling.views, training.admin, training.api, training.views
from webapp.celery import app

print(sorted(name for name in ('torch', 'transformers', 'accelerate', 'peft') if name in sys.modules))
"""


NO_MODEL_TESTS = (
    "tests/labeling",
    "tests/test_pages.py",
    "tests/test_access_matrix.py",
    "tests/test_api_schema.py",
    "tests/test_api_fuzz.py",
)
TORCH_IMPORTER = "def test_it_imports_torch():\n    import torch  # noqa: F401\n"


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module in the project's packages, migrations left out."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" not in parts:
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def import_source(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of the module a `from ... import` statement in `module` imports from."""
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + [node.module] if node.module else base)


def imported_modules(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The other project modules that the import statements of `module`, at any depth, import.

    `from x import y` imports the module x.y when there is one, else (a name in) x.
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = import_source(node, module, is_package)
            for alias in node.names:
                name = f"{source}.{alias.name}"
                found.add(name if name in modules else source)
    return (found & modules) - {module}


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    modules = project_modules()
    return {
        name: imported_modules(parse(path), name, path.name == "__init__.py", set(modules))
        for name, path in modules.items()
    }


def shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The modules on a shortest import path from `start` to `goal`, both included (breadth first); None when none."""
    came_from = {start: start}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == goal:
            path = [goal]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for target in sorted(graph[module] - came_from.keys()):
            came_from[target] = module
            queue.append(target)
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    """For each import that is on a cycle, a shortest cycle through it, as "a -> b -> a" from its first
    module by name; each cycle once."""
    rings = set()
    for module, targets in graph.items():
        for target in targets:
            back = shortest_path(graph, target, module)
            if back:
                ring = [module, *back[:-1]]
                first = ring.index(min(ring))
                rings.add(tuple(ring[first:] + ring[:first]))
    return [" -> ".join([*ring, ring[0]]) for ring in sorted(rings)]


def local_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside function bodies (nested functions too), in line order."""
    found = {
        node
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    return sorted(found, key=lambda node: node.lineno)


def says_why(lines: list[str], node: ast.stmt) -> bool:
    """Whether an import statement has a comment on one of its lines, or a comment line directly above it.

    An import statement holds no string, so a # on its lines starts a comment.
    """
    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
    return above.startswith("#") or any("#" in line for line in lines[node.lineno - 1 : node.end_lineno])


def test_there_is_no_import_cycle_among_the_projects_modules():
    cycles = import_cycles(import_graph())
    assert not cycles, "Import cycles (function-level imports included):\n" + "\n".join(cycles)


def third_party_imports(tree: ast.Module) -> set[str]:
    """The top-level names of every module an import statement of `tree` imports, at any depth."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_labeling_never_imports_training():
    """The apps import one way: training (models, runs, the trainer) builds on labeling (people and
    their judgements), never the other way round."""
    graph = import_graph()
    found = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if module.startswith("labeling")
        for target in sorted(targets)
        if target.startswith("training")
    ]
    assert not found, "labeling must not import training:\n" + "\n".join(found)


PURE = ("labeling.statistics", "labeling.conversations")


def test_the_training_core_imports_neither_django_nor_the_apps_but_the_pure_modules():
    """training/core runs without Django: of the project it reads only labeling.statistics and
    labeling.conversations, which are plain Python (no Django, no project import) themselves."""
    graph, modules = import_graph(), project_modules()
    core = [name for name in graph if name.startswith("training.core")]
    allowed = set(core) | set(PURE) | {"labeling", "training"}
    found = [f"{name} imports {target}" for name in core for target in sorted(graph[name] - allowed)]
    found += [f"{name} imports django" for name in core if "django" in third_party_imports(parse(modules[name]))]
    for pure in PURE:
        found += [f"{pure} imports {name}" for name in third_party_imports(parse(modules[pure])) & {"django", "torch"}]
        found += [f"{pure} imports {target}" for target in graph[pure]]
    assert not found, "\n".join(found)


def test_local_imports_say_why():
    unexplained = []
    for path in project_modules().values():
        lines = path.read_text(encoding="utf-8").splitlines()
        unexplained += [
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for node in local_imports(parse(path))
            if not says_why(lines, node)
        ]
    assert not unexplained, "Imports inside a function without a comment saying why:\n" + "\n".join(unexplained)


def test_the_web_process_never_imports_torch():
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def pytest_session(*args: str) -> subprocess.CompletedProcess:
    """A pytest session in a fresh interpreter with tests/no_model_plugin.py, which fails it if torch,
    transformers, accelerate or peft was imported. Its test database is its own, beside this session's."""
    env = dict(os.environ)
    url = urlsplit(env.get("DATABASE_URL", ""))
    if url.scheme.startswith("postgres"):
        env["DATABASE_URL"] = urlunsplit(url._replace(path=f"{url.path}_no_model"))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.no_model_plugin", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_the_no_model_plugin_fails_a_session_that_imports_torch_and_names_the_test(tmp_path):
    (tmp_path / "test_loads.py").write_text(TORCH_IMPORTER)
    result = pytest_session(str(tmp_path / "test_loads.py"))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
    assert "torch: first imported in " in result.stdout and "test_loads.py::test_it_imports_torch" in result.stdout


def test_collecting_the_labeling_page_api_and_access_tests_imports_no_torch():
    result = pytest_session("--collect-only", *NO_MODEL_TESTS)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_running_the_labeling_page_api_and_access_tests_imports_no_torch():
    result = pytest_session(*NO_MODEL_TESTS)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
