"""``silentfail.citation``: BibTeX for the package and for the references behind the
taxonomy nodes a user names, so that one cites exactly what one used (after
``diffrax.citation``)."""

from __future__ import annotations

from collections.abc import Iterable

from .taxonomy import Taxonomy, builtin_taxonomy
from .taxonomy.references import PACKAGE_BIBTEX
from .taxonomy.schema import NodeKind


def citation(nodes: Iterable[str] = (), *, taxonomy: Taxonomy | None = None) -> str:
    """BibTeX entries: the package, the source paper, and the references of ``nodes``.

    Args:
        nodes: node ids, names or aliases (e.g. ``"proximal"``, ``"Ditto"``,
            ``"alignment_erosion"``); a reference id cites that reference.
        taxonomy: the graph to look them up in (default: the built-in one).

    Returns:
        The entries, each once, package first, in a deterministic order.

    Raises:
        SchemaError: for a name that is no node of the taxonomy.
    """
    tax = taxonomy or builtin_taxonomy()
    keys: list[str] = ["oh2026silent"]
    for name in nodes:
        node = tax.find(name)
        refs = [node.id] if node.kind is NodeKind.REFERENCE else [r.id for r in tax.references_of(node.id)]
        keys.extend(r for r in refs if r not in keys)
    entries = [PACKAGE_BIBTEX] + [tax.node(k).bibtex for k in keys]  # type: ignore[attr-defined]
    return "\n\n".join(entries) + "\n"
