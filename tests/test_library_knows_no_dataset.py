"""The library knows no dataset: nothing of the credit-default example is named outside its folder.

The names are read from the example's own project.yaml (its model, entity, key,
feature columns, sensitive attribute, label), so a name the example adds is
checked too. Names the example shares with another example (``region``) or
that are plain English words (the label ``default``, checked only as a column
subscript such as ``frame["default"]``) are not forbidden as words.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.projects import CHURN, CREDIT

ROOT = Path(__file__).resolve().parent.parent
# The suite's own code and what it ships to users: the library, the components (code, compiled YAML,
# READMEs), the pipelines and their compiled YAML, the serving docs.
SCANNED = [("src/mlops", ("*.py", "*.yaml")), ("components", ("*.py", "*.yaml", "*.md")),
           ("pipelines", ("*.py", "*.yaml")), ("serving", ("*.md",))]
DOMAIN_WORDS = ("credit", "loan", "recession", "repaid", "applicant", "applications")


def _forbidden() -> dict[str, re.Pattern]:
    shared = {*CHURN.features.names, *CHURN.sensitive, *CHURN.slices, CHURN.entity.key, CHURN.entity.name}
    names = {CREDIT.name, CREDIT.names.model, CREDIT.entity.name, CREDIT.entity.key, *CREDIT.sensitive,
             *CREDIT.features.names, *DOMAIN_WORDS} - shared
    # Short words would match inside others (age in usage); they are checked as whole words.
    patterns = {name: re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", re.IGNORECASE)
                for name in names if len(name) > 3}
    patterns[f"the label column {CREDIT.label.column!r}"] = re.compile(
        rf"""\[\s*["']{re.escape(CREDIT.label.column)}["']\s*\]""")
    return patterns


def _files() -> list[Path]:
    out = []
    for folder, globs in SCANNED:
        for glob in globs:
            out += [p for p in (ROOT / folder).rglob(glob) if "__pycache__" not in p.parts]
    return sorted(set(out))


def test_the_scan_covers_the_library_and_finds_a_planted_name(tmp_path):
    files = _files()
    assert len(files) > 60 and any(p.name == "stages.py" for p in files)
    planted = "ENTITY_KEY = 'customer_id'  # a constant of one dataset\n"
    assert [n for n, pattern in _forbidden().items() if pattern.search(planted)] == [CREDIT.entity.key]


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_outside_the_example_names_the_credit_dataset(path):
    text = path.read_text(errors="replace")
    found = []
    for name, pattern in _forbidden().items():
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not found, "the credit-default example is named outside its folder:\n" + "\n".join(found[:20])
