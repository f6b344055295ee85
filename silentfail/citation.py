"""``silentfail.citation``: BibTeX for the package and for the references behind the
taxonomy nodes a user names, so that one cites exactly what one used (after
``diffrax.citation``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .taxonomy import Taxonomy, builtin_taxonomy
from .taxonomy.references import PACKAGE_BIBTEX
from .taxonomy.schema import NodeKind

_RULES = {
    "full": "full_finetuning",
    "proximal": "proximal",
    "subspace": "subspace",
    "head_only": "head_only",
    "teacher": "teacher_mixing",
}


def scenario_nodes(scenario) -> list[str]:
    """The taxonomy nodes a simulated scenario exercises: its personalization rule, its
    active shift families, the constraints in force (:func:`silentfail.constraints.scenario_constraints`,
    the one mapping from a scenario to constraints), the threats it stages, and the six
    failure modes it measures.

    Args:
        scenario: a Scenario.

    Returns:
        Taxonomy node ids.
    """
    from .constraints import scenario_constraints
    from .sim.scenario import MODES

    sc, sh = scenario, scenario.shifts
    nodes = [_RULES[sc.personalization.rule], *scenario_constraints(sc)]
    active = {
        "label_shift": sh.label_alpha is not None,
        "attribute_imbalance": sh.attribute_alpha is not None,
        "spurious_correlation": sh.spurious_mean is not None,
        "covariate_shift": sh.covariate_scale > 0 or sh.covariate_var_spread > 0,
        "concept_shift": sh.concept_angle > 0,
        "temporal_drift": sh.temporal.kind != "none",
        "external_fm_poisoning": sc.personalization.teacher_poison > 0,
    }
    nodes += [n for n, on in active.items() if on]
    return nodes + list(MODES)


def citation(nodes: Iterable[str] = (), *, taxonomy: Taxonomy | None = None, scenario: Any = None) -> str:
    """BibTeX entries: the package, the source paper, and the references of ``nodes``.

    Args:
        nodes: node ids, names or aliases (e.g. ``"proximal"``, ``"Ditto"``,
            ``"alignment_erosion"``); a reference id cites that reference.
        taxonomy: the graph to look them up in (default: the built-in one).
        scenario: a ``silentfail.sim.scenario.Scenario``: also cite what it exercises
            (see :func:`scenario_nodes`).

    Returns:
        The entries, each once, package first, in a deterministic order.

    Raises:
        SchemaError: for a name that is no node of the taxonomy.
    """
    tax = taxonomy or builtin_taxonomy()
    keys: list[str] = ["oh2026silent"]
    names = list(nodes) + (scenario_nodes(scenario) if scenario is not None else [])
    for name in names:
        node = tax.find(name)
        refs = [node.id] if node.kind is NodeKind.REFERENCE else [r.id for r in tax.references_of(node.id)]
        keys.extend(r for r in refs if r not in keys)
    entries = [PACKAGE_BIBTEX] + [tax.node(k).bibtex for k in keys]  # type: ignore[attr-defined]
    return "\n\n".join(entries) + "\n"
