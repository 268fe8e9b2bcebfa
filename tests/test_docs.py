"""The manual against the tree: the architecture page's module map lists every module there is and
none that is gone; the README stays short and keeps its two commands."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("labeling", "training", "webapp")
MAP_ROW = re.compile(r"^\| `(?P<path>[^`]+\.py)` \| .+ \|$")


def holds_code(path: Path) -> bool:
    """Whether a module holds more than a docstring (an empty `__init__.py` does not)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def modules_in_the_tree() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and (path.name != "__init__.py" or holds_code(path))
    }


def modules_in_the_map() -> list[str]:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return [m["path"] for line in section.splitlines() if (m := MAP_ROW.match(line.strip()))]


def test_the_module_map_lists_every_module_once_and_none_that_is_gone():
    listed = modules_in_the_map()
    assert len(listed) == len(set(listed)), "listed twice: " + ", ".join(p for p in set(listed) if listed.count(p) > 1)
    tree = modules_in_the_tree()
    assert not tree - set(listed), "missing from docs/architecture.md's module map: " + ", ".join(
        sorted(tree - set(listed))
    )
    assert not set(listed) - tree, "in the module map but not in the tree: " + ", ".join(sorted(set(listed) - tree))


def test_the_readme_is_short_and_names_the_two_commands_near_its_top():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    top = "\n".join(lines[:60])
    assert "make demo" in top and "make test" in top
