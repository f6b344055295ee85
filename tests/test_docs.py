"""The documentation site builds in strict mode (a broken reference, a docstring that
does not parse or a missing page fails), and every reference the project makes to a
file resolves inside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "theory/index.html", "api/index.html", "cli/index.html", "examples/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text()
    assert "group_accuracy_gap" in api and "attribute_null" in api  # rendered from the docstrings
    assert "silentfail simulate" in (site / "cli" / "index.html").read_text()
    # the examples are included by the snippets extension, not left as snippet lines
    examples = (site / "examples" / "index.html").read_text()
    assert "8&lt;" not in examples and "8 &lt;" not in examples and "--8<" not in examples
    assert examples.count('<span class="nf">main</span>') >= 6  # every example's source, rendered
    plugin_howto = (site / "howto" / "plugins" / "index.html").read_text()
    assert "squared_loss_gap" in plugin_howto and "8&lt;" not in plugin_howto


def test_no_reference_to_a_file_outside_the_repository():
    """The project cites its own theory document and paper, never a design file it does
    not ship."""
    pattern = re.compile(r"DESIGN\.md|\.\./shared")
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", ".git", "build", "site") or not path.is_file():
            continue
        if path.suffix in (".py", ".md", ".tex", ".toml", ".yml", ".cff", ".txt") and path != Path(__file__):
            if pattern.search(path.read_text(errors="ignore")):
                offenders.append(str(rel))
    assert not offenders, offenders


def test_the_software_citation_is_complete_and_consistent():
    """CITATION.cff, `silentfail cite` and pyproject name the same version and date, and
    both carry the repository URL (a placeholder until the maintainers publish it)."""
    import tomllib

    from silentfail.taxonomy.references import PACKAGE_BIBTEX

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cff = (ROOT / "CITATION.cff").read_text()
    date = re.search(r'date-released: "([0-9-]+)"', cff).group(1)
    assert f"version: {version}" in cff and "repository-code:" in cff
    assert f"version = {{{version}}}" in PACKAGE_BIBTEX and f"date = {{{date}}}" in PACKAGE_BIBTEX
    assert "url = {" in PACKAGE_BIBTEX


def test_ruff_lint_and_format_are_clean():
    """The code is formatted by ruff and passes its lint (pyproject [tool.ruff])."""
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)}:\n{proc.stdout[-3000:]}{proc.stderr[-1000:]}"
