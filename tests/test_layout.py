"""The deployment boundary: what ships to Airflow, Glue and Lambda never imports the development tooling.

`dags/`, `plugins/` and `include/` ship to Airflow, `glue_scripts/` to Glue, `infrastructure/` (the
alerts handler) to Lambda; `dev/` and `tests/` ship nowhere. Imports are read from the source, so a
late import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("dags", "plugins", "include", "glue_scripts", "infrastructure")
NOT_SHIPPED = {"dev", "tests"}
PROJECT_PACKAGES = {"dags", "plugins", "include", "glue_scripts", "infrastructure", *NOT_SHIPPED}
# What the Glue 5 runtime provides besides the standard library; the scripts' own package is the rest.
GLUE_RUNTIME = {"pyspark", "py4j", "boto3", "botocore"}
GLUE_OWN = {"hardware_correlation"}
# The Lambda Python runtime provides boto3 and nothing else of note.
LAMBDA_RUNTIME = {"boto3", "botocore"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(folder: str, allowed) -> list[str]:
    found = []
    for path in modules(folder):
        for name in sorted(imported_top_levels(path)):
            if not allowed(name):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("folder", SHIPPED)
def test_shipped_code_does_not_import_the_development_tooling(folder):
    assert modules(folder), f"{folder}/ has no Python modules"
    assert violations(folder, lambda name: name not in NOT_SHIPPED) == []


def test_glue_scripts_import_nothing_outside_themselves():
    def allowed(name: str) -> bool:
        return name in sys.stdlib_module_names or name in GLUE_RUNTIME or name in GLUE_OWN

    assert violations("glue_scripts", allowed) == []


def test_the_lambda_handler_needs_only_its_runtime():
    def allowed(name: str) -> bool:
        return name in sys.stdlib_module_names or name in LAMBDA_RUNTIME

    assert violations("infrastructure", allowed) == []


def test_the_check_sees_a_late_import_of_the_tooling(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from dev.local_aws import stack\n    import tests.support\n")
    assert imported_top_levels(module) == {"dev", "tests"}


def test_every_top_level_package_is_accounted_for():
    packages = {path.name for path in ROOT.iterdir() if path.is_dir() and any(path.rglob("*.py"))}
    packages -= {".venv", ".local", ".git"}
    assert packages <= PROJECT_PACKAGES, f"unplaced top-level code: {packages - PROJECT_PACKAGES}"


def test_airflowignore_keeps_non_dag_folders_out_of_parsing():
    """With the repository root as the DAGs folder, Airflow's own discovery finds only dags/."""
    from airflow.utils.file import list_py_file_paths

    found = [Path(path).resolve() for path in list_py_file_paths(str(ROOT), safe_mode=False)]
    assert found, "no DAG file found"
    assert [path for path in found if path.parent != ROOT / "dags"] == []
