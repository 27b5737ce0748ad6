"""The library is laid out by stage, and its floors only look down.

Each floor may import the floors below it and modules on its own floor,
never a floor above: the platform knows no stage, training knows no
registry, nothing below the CLI calls the CLI. A newcomer then reads a stage
bottom-up without meeting what comes later in the lifecycle. Imports inside
functions count too: a lazy import of a higher floor is the same tangle,
only hidden.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlops

LIBRARY = Path(mlops.__file__).parent

# Lowest first. A module's floor is its longest matching prefix (project.check dry-runs every stage,
# so it stands above them although its folder is the project's).
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("mlops", "mlops.errors", "mlops.stats", "mlops.html_report")),
    ("platform", ("mlops.platform",)),
    ("validation", ("mlops.validation",)),
    ("project", ("mlops.project",)),
    ("features", ("mlops.features",)),
    ("training", ("mlops.training",)),
    ("evaluation", ("mlops.evaluation",)),
    ("registry", ("mlops.registry",)),
    ("serving", ("mlops.serving",)),
    ("rollout", ("mlops.rollout",)),
    ("batch", ("mlops.batch",)),
    ("monitoring", ("mlops.monitoring",)),
    ("pipeline steps", ("mlops.stages", "mlops.reports")),
    ("cluster", ("mlops.cluster",)),
    ("tools", ("mlops.demo", "mlops.project.check", "mlops.project.scaffold")),
    ("cli", ("mlops.cli",)),
]
# The only modules outside a stage folder: shared by every floor, or the pipeline steps themselves.
TOP_LEVEL = {"__init__", "errors", "html_report", "stages", "reports"}


def module_name(path: Path) -> str:
    parts = ("mlops", *path.relative_to(LIBRARY).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> tuple[int, str]:
    # The bare package (its __version__) is core; a new folder under it must be placed explicitly.
    matches = [(len(prefix), rank, name) for rank, (name, prefixes) in enumerate(FLOORS) for prefix in prefixes
               if module == prefix or (prefix != "mlops" and module.startswith(prefix + "."))]
    assert matches, f"{module} is on no floor: add it to FLOORS in {__file__}"
    _, rank, name = max(matches)
    return rank, name


def imported_modules(module: str, source: str, is_package: bool = False) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from mlops.x import y` may name a module y: count the more specific one when it exists.
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return {m for m in found if m == "mlops" or m.startswith("mlops.")}


def upward_imports(module: str, source: str, is_package: bool = False) -> list[str]:
    rank, name = floor(module)
    return [f"{module} ({name}) imports {imported} ({floor(imported)[1]})"
            for imported in sorted(imported_modules(module, source, is_package)) if floor(imported)[0] > rank]


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (LIBRARY / relative).with_suffix(".py").exists() or (LIBRARY / relative / "__init__.py").exists()


def library_modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_no_floor_imports_a_higher_floor():
    upward = [line for path in library_modules()
              for line in upward_imports(module_name(path), path.read_text(), path.name == "__init__.py")]
    assert not upward, "imports from a lower floor to a higher one:\n  " + "\n  ".join(upward)


def test_every_stage_lives_in_its_folder():
    loose = {p.stem for p in LIBRARY.glob("*.py")} - TOP_LEVEL
    assert not loose, f"modules outside a stage folder: {sorted(loose)} (move each into its stage's package)"
    for path in library_modules():
        floor(module_name(path))  # every module is placed on a floor


def test_the_floor_check_catches_an_upward_import_even_a_lazy_one():
    lazy_cli = "def helper():\n    from mlops.cli.main import main\n    return main\n"
    assert upward_imports("mlops.platform.probe", lazy_cli) == [
        "mlops.platform.probe (platform) imports mlops.cli.main (cli)"]
    module_form = "from mlops.registry import promotion\n"
    assert upward_imports("mlops.training.probe", module_form) == [
        "mlops.training.probe (training) imports mlops.registry.promotion (registry)"]
    assert upward_imports("mlops.cli.probe", lazy_cli + module_form) == []
    assert upward_imports("mlops.project.spec", "from mlops.project.check import check_project\n") == [
        "mlops.project.spec (project) imports mlops.project.check (tools)"]
    with pytest.raises(AssertionError, match="mlops.newstage.run is on no floor"):
        floor("mlops.newstage.run")
