"""mkdocs hooks: mirror the installed package layout for the API reference, and write
docs/cli.md from the typer app before each build, so the CLI reference is generated
from the commands' own help and never goes stale."""

from __future__ import annotations

from pathlib import Path

import typer


def _walk(cmd, path: list[str], out: list[str], parent=None) -> None:
    """The help of ``cmd`` and of every subcommand (typer ships its own click: the
    command's own context class is used, and a group is what lists commands)."""
    ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent)
    out += [f"## `{' '.join(path)}`", "", "```text", cmd.get_help(ctx).replace("\x08", ""), "```", ""]
    if hasattr(cmd, "list_commands"):
        for sub in cmd.list_commands(ctx):
            _walk(cmd.get_command(ctx, sub), [*path, sub], out, ctx)


#: The installed package -> its folder in the checkout (pyproject's package-dir).
LAYOUT = {
    "silentfail": "silentfail",
    "silentfail/sim": "sim",
    "silentfail/taxonomy": "taxonomy",
    "silentfail/proofs": "proofs",
}


def on_startup(**kwargs) -> None:
    """Symlink the checkout's folders into build/docs-src/ in the installed layout, where
    the API reference's static analysis (mkdocstrings' python handler) reads them; on
    startup, before any plugin reads its configuration."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    mirror = root / "build" / "docs-src"
    shutil.rmtree(mirror, ignore_errors=True)
    for installed, folder in LAYOUT.items():
        target = mirror / installed
        target.mkdir(parents=True, exist_ok=True)
        for item in (root / folder).iterdir():
            if item.suffix in (".py", ".pyi") or item.name == "py.typed":
                (target / item.name).symlink_to(item)


def on_pre_build(config, **kwargs) -> None:
    from silentfail.cli import app

    out = ["# CLI reference", "", "Generated from the command-line application's help at each docs build.", ""]
    _walk(typer.main.get_command(app), ["silentfail"], out)
    target = Path(config["docs_dir"]) / "cli.md"
    text = "\n".join(out)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
