"""Repository invariants: the README's commands, CI, the one-way arrows, generated artifacts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.export import to_latex

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) == 1 for b in blocks)
    run_cmd, test_cmd = blocks
    assert "pytest" in test_cmd and "pytest" not in run_cmd
    assert test_cmd.strip() in (ROOT / ".ci" / "run").read_text()


def _imports(folder: str) -> set[str]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2 or (node.module or "").startswith("silentfail"):
                    found.add(f"{node.level}:{node.module}")
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("silentfail"))
    return found


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("taxonomy", ("sim", "proofs", "silentfail")),
        ("sim", ("proofs", "taxonomy", "cli")),
    ],
)
def test_arrows_go_one_way(folder, forbidden):
    for imp in _imports(folder):
        # no relative import reaching out of the subpackage, no absolute import of a sibling
        assert not imp.startswith(("2:", "3:")), f"{folder} imports {imp}"
        assert not any(f"silentfail.{f}" in imp or imp.endswith(f":{f}") for f in forbidden), f"{folder} imports {imp}"


def test_no_top_level_science_modules_are_installed(tmp_path):
    import subprocess
    import sys

    code = (
        "import importlib.util as u, silentfail.sim, silentfail.taxonomy, silentfail.proofs;"
        "print([n for n in ('sim', 'taxonomy', 'proofs') if u.find_spec(n) is not None])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_generated_latex_table_is_current():
    committed = (ROOT / "paper" / "generated" / "taxonomy_table.tex").read_text()
    assert committed == to_latex(builtin_taxonomy()), (
        "run: silentfail taxonomy export --format latex -o paper/generated/taxonomy_table.tex"
    )


def test_generated_theorems_are_current():
    from silentfail.proofs import latex_document

    committed = (ROOT / "paper" / "generated" / "theorems.tex").read_text()
    assert committed == latex_document(), "run: silentfail prove --latex -o paper/generated/theorems.tex"
