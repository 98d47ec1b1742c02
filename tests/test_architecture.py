"""The import rules of docs/architecture.md, checked against the code.

The module table there says, for each library module, which project modules it may import; the
library imports neither Kedro nor MLflow, and nothing in it imports the pipelines or datasets.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "mc_simclr"
FRAMEWORKS = {"kedro", "kedro_datasets", "kedro_mlflow", "kedro_viz", "mlflow"}
#: Kedro's project glue: settings, hooks, registry, entry point.
GLUE = {"settings.py", "hooks.py", "pipeline_registry.py", "__main__.py", "__init__.py"}
#: The one library module that is the MLflow model (docs/architecture.md says so in its row).
MLFLOW_MODULES = {"serving"}
#: Library folders whose modules have rows of their own (`audio/io`, `evaluation/knn`, ...).
SUBPACKAGES = ("audio", "acoustics", "evaluation", "reporting")


def allowed_imports() -> dict[str, set[str]]:
    """``{module: project modules it may import}`` from the module table of docs/architecture.md."""
    rules: dict[str, set[str]] = {}
    for line in (PROJECT_ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        module = cells[0].strip("`").removesuffix(".py").rstrip("/")
        rules[module] = set(re.findall(r"`([^`]+)`", cells[2]))
    return rules


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """Project modules (``audio/io``, ``pipelines``, ...) and other top-level packages imported by ``path``."""
    project, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "mc_simclr":
                names = [f"mc_simclr.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("mc_simclr."):
                parts = name.split(".")[1:]
                if parts[0] in ("pipelines", "datasets"):
                    project.add(parts[0])
                elif parts[0] in SUBPACKAGES and len(parts) > 1:
                    project.add("/".join(parts[:2]))
                else:
                    project.add(parts[0])
            else:
                other.add(name.split(".")[0])
    return project, other


def library_modules() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in ("pipelines", "datasets") and p.name not in GLUE
    )


def module_name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix().removesuffix(".py")


def test_every_library_module_is_in_the_table():
    rules = allowed_imports()
    assert {"pipelines", "datasets"} <= set(rules)
    missing = sorted(module_name(p) for p in library_modules() if module_name(p) not in rules)
    assert not missing, f"modules without a row in docs/architecture.md: {missing}"


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_library_module_imports_follow_the_table(path):
    rules = allowed_imports()
    project, other = imports_of(path)
    allowed = {m for m in rules[module_name(path)] if m != "any of the above"}
    assert project <= allowed, f"{module_name(path)} imports {sorted(project - allowed)}, not in its row"
    forbidden = FRAMEWORKS - ({"mlflow"} if module_name(path) in MLFLOW_MODULES else set())
    assert not other & forbidden, f"{module_name(path)} imports {sorted(other & forbidden)}"


def test_datasets_use_kedro_but_not_mlflow_or_the_pipelines():
    rules = allowed_imports()
    for path in sorted((PACKAGE / "datasets").glob("*.py")):
        project, other = imports_of(path)
        assert project - {"datasets"} <= rules["datasets"], path.name
        assert "mlflow" not in other, path.name
