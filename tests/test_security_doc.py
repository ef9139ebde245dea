"""docs/security.md cites tests as proof: each ``tests/<file>.py::<test>`` it names must exist, so
a renamed or deleted test cannot leave the document claiming a proof that is gone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
CITATION = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_test_the_security_document_cites_exists() -> None:
    cited = CITATION.findall(DOC.read_text())
    assert len(cited) >= 40, f"the document cites only {len(cited)} tests"
    missing = []
    for path, name in sorted(set(cited)):
        source = ROOT / path
        defined = (
            {
                node.name
                for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if source.is_file()
            else set()
        )
        if name not in defined or not name.startswith("test_"):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"


def test_every_file_the_security_document_names_exists() -> None:
    named = set(
        re.findall(r"`((?:api|booking|tests|docs|projections)/[\w/]+\.\w+)`", DOC.read_text())
    )
    assert named, "the document names no file"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, f"docs/security.md names files that do not exist: {missing}"
