"""Every public definition of the package has a docstring, and the detector statistics
(the functions the taxonomy names as implementations) document their arguments, what
they return and the formula, Google style."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from silentfail.sim import detectors as dt

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("silentfail", "sim", "taxonomy", "proofs")


def test_every_public_definition_has_a_docstring():
    missing = []
    for folder in PACKAGES:
        for path in (ROOT / folder).glob("*.py"):
            for node in ast.parse(path.read_text()).body:
                members = [node] + (list(node.body) if isinstance(node, ast.ClassDef) else [])
                for n in members:
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_"):
                        if not ast.get_docstring(n):
                            missing.append(f"{path.relative_to(ROOT)}:{n.lineno} {n.name}")
    assert not missing, missing


def test_detector_statistics_document_args_returns_and_formula():
    for name, det in dt.REGISTRY.items():
        doc = inspect.getdoc(det.statistic) or ""
        assert "Args:" in doc and "Returns:" in doc, name
        for arg in inspect.signature(det.statistic).parameters:
            assert f"{arg}:" in doc, (name, arg)
        assert "s_t" in doc or "=" in doc, name  # the statistic's formula
