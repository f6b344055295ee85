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


def _documented_args(doc: str) -> set[str]:
    """The names an ``Args:`` section documents: the heads of its entries, ``name:`` or
    ``a, b, c:`` (one entry for several arguments)."""
    lines = doc.splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return set()
    start = [line.strip() for line in lines].index("Args:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    names: set[str] = set()
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # the next section
        head, sep, _ = line.strip().partition(":")
        if sep and len(line) - len(line.lstrip()) == indent + 4:
            names.update(part.strip().lstrip("*").split(" ")[0] for part in head.split(","))
    return names


def _documents_its_interface(n: ast.FunctionDef) -> bool:
    doc = ast.get_docstring(n) or ""
    args = [a.arg for a in n.args.args + n.args.kwonlyargs if a.arg not in ("self", "cls")]
    returns_none = n.returns is not None and ast.unparse(n.returns) == "None"
    has_returns = "Returns:" in doc or "Yields:" in doc or returns_none
    return has_returns and set(args) <= _documented_args(doc)


def test_every_public_function_documents_its_arguments_and_what_it_returns():
    """Google style: every public function and method has an ``Args:`` section naming
    each argument (when it takes any) and a ``Returns:`` (or ``Yields:``) section (unless
    it returns None). The CLI's commands are documented by their options' help texts
    (the CLI reference is generated from them) and are left out."""
    missing = []
    for folder in PACKAGES:
        for path in (ROOT / folder).glob("*.py"):
            if path.name == "cli.py":
                continue
            for node in ast.parse(path.read_text()).body:
                members = [node] + (list(node.body) if isinstance(node, ast.ClassDef) else [])
                for n in members:
                    if not isinstance(n, ast.FunctionDef) or n.name.startswith("_"):
                        continue
                    if any("property" in ast.unparse(d) for d in n.decorator_list):
                        continue
                    if not _documents_its_interface(n):
                        missing.append(f"{path.relative_to(ROOT)}:{n.lineno} {n.name}")
    assert not missing, missing
