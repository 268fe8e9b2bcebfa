"""A pytest plugin for a session that must never load a model: it fails the session when torch,
transformers, accelerate or peft was imported by the time it ends, naming each, when it was first
imported (while collecting, or in which test) and the frames that imported it, the project's own first.

    python -m pytest tests/labeling -p tests.no_model_plugin

Loaded with -p it is imported before any conftest, so it sees every import the suite makes.
"""

import importlib.abc
import sys
import traceback
from pathlib import Path

import _pytest
import pluggy
import pytest

MODEL_PACKAGES = ("torch", "transformers", "accelerate", "peft")
ROOT = Path(__file__).resolve().parents[1]
PROJECT_FOLDERS = tuple(str(ROOT / folder) for folder in ("labeling", "training", "webapp", "tests", "scripts"))
MACHINERY = tuple(str(Path(module.__file__).parent) for module in (pytest, pluggy, _pytest))

REPORT = pytest.StashKey[list[str]]()
phase = "while pytest started (plugins, settings, the first conftests)"
first_imports: dict[str, str] = {
    name: "before this plugin was loaded" for name in MODEL_PACKAGES if name in sys.modules
}


class ImportRecorder(importlib.abc.MetaPathFinder):
    """Finds nothing: notes where each model package is first imported, and lets the other finders import it."""

    def find_spec(self, fullname, path, target=None):
        name = fullname.partition(".")[0]
        if name in MODEL_PACKAGES and name not in first_imports:
            stack = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith(("<frozen", *MACHINERY))]
            ours = [f for f in stack if f.filename.startswith(PROJECT_FOLDERS)]
            where = "".join(traceback.format_list((ours or stack)[-6:]))
            first_imports[name] = f"{phase} (as {fullname}), by:\n{where}"
        return None


sys.meta_path.insert(0, ImportRecorder())


def pytest_collection(session: pytest.Session) -> None:
    global phase
    phase = "while collecting"


def pytest_collection_finish(session: pytest.Session) -> None:
    global phase
    phase = "after collection"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    global phase
    phase = f"in {item.nodeid}"
    try:
        return (yield)
    finally:
        phase = "after the tests"


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    imported = [name for name in MODEL_PACKAGES if name in sys.modules]
    if imported:
        session.config.stash[REPORT] = imported
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    imported = config.stash.get(REPORT, [])
    if not imported:
        return
    terminalreporter.section("model packages imported", red=True)
    terminalreporter.line(f"This session must load no model, but it imported {', '.join(imported)}.", red=True)
    for name in imported:
        terminalreporter.line(f"{name}: first imported {first_imports.get(name, 'where, unseen')}")
