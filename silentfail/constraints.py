"""Constraint sets <-> scenarios: which taxonomy constraints a scenario puts in force,
and a scenario with a given constraint set (the front door joins ``taxonomy`` and
``sim`` here; neither imports the other).

Access constraints (``secure_aggregation``, ``no_raw_data_access``,
``no_personal_model_access``, ``no_attribute_use``, ``no_public_probe``) switch the server's access in
``federation``; the others are physics the scenario itself sets (``central_dp`` needs
``federation.dp = "central"``, ``partial_participation`` a participation below 1, ...),
so naming one the scenario lacks is an error that says which field to set.
"""

from __future__ import annotations

from collections.abc import Iterable

from .sim.scenario import Scenario, ScenarioError
from .taxonomy import builtin_taxonomy
from .taxonomy.schema import NodeKind

#: access constraint -> (federation flag, flag value when the constraint is in force)
ACCESS_CONSTRAINTS = {
    "secure_aggregation": ("secure_aggregation", True),
    "no_attribute_use": ("attribute_use", False),
    "no_personal_model_access": ("personal_model_access", False),
    "no_raw_data_access": ("raw_data_access", False),
    "no_public_probe": ("public_probe", False),
}

#: physical constraint -> (predicate on the scenario, the field that sets it)
PHYSICAL_CONSTRAINTS = {
    "central_dp": (lambda sc: sc.federation.dp == "central", "federation.dp = 'central'"),
    "local_dp": (lambda sc: sc.federation.dp == "local", "federation.dp = 'local'"),
    "partial_participation": (
        lambda sc: sc.federation.participation < 1 or sc.federation.clients_per_round < sc.population.num_clients,
        "federation.participation < 1",
    ),
    "participation_disparity": (
        lambda sc: sc.federation.participation_disparity > 0,
        "federation.participation_disparity > 0",
    ),
    "client_dropout": (lambda sc: sc.federation.dropout > 0, "federation.dropout > 0"),
    "byzantine_clients": (lambda sc: sc.federation.byzantine_fraction > 0, "federation.byzantine_fraction > 0"),
}


def scenario_constraints(sc: Scenario) -> tuple[str, ...]:
    """The taxonomy constraints in force in a scenario (taxonomy order).

    Args:
        sc: the scenario.

    Returns:
        The constraint ids.
    """
    on = {c for c, (flag, value) in ACCESS_CONSTRAINTS.items() if getattr(sc.federation, flag) == value}
    on |= {c for c, (pred, _) in PHYSICAL_CONSTRAINTS.items() if pred(sc)}
    return tuple(c for c in builtin_taxonomy().ids(NodeKind.CONSTRAINT) if c in on)


#: The federated baseline: in force unless the scenario itself grants the access (the
#: server of a federation never has the clients' data or personal models unless the user
#: says so, with ``federation.raw_data_access`` / ``personal_model_access = true``).
BASELINE_CONSTRAINTS = ("no_raw_data_access", "no_personal_model_access")
#: Access constraints that a constraint list sets exactly (in force iff named); the
#: others (the baseline, ``no_public_probe``) are in force when named and otherwise as
#: the scenario has them.
EXACT_CONSTRAINTS = ("secure_aggregation", "no_attribute_use")


def with_constraints(sc: Scenario, constraints: Iterable[str]) -> Scenario:
    """The scenario with these access constraints in force: EXACT_CONSTRAINTS exactly
    when named; the others when named, else as the scenario has them (so the baseline,
    BASELINE_CONSTRAINTS, is never lifted by omission). The physical constraints named
    must be the scenario's own.

    Args:
        sc: the scenario.
        constraints: the constraint ids to put in force.

    Returns:
        The scenario.

    Raises:
        ScenarioError: an unknown constraint id (naming the known ones), or a physical
            constraint the scenario must set itself (naming its field).
    """
    names = [c.strip() for c in constraints if c.strip()]
    known = builtin_taxonomy().ids(NodeKind.CONSTRAINT)
    bad = [c for c in names if c not in known]
    if bad:
        raise ScenarioError(f"unknown constraint(s) {bad}; constraints: {', '.join(known)}")
    for c in names:
        if c in PHYSICAL_CONSTRAINTS and not PHYSICAL_CONSTRAINTS[c][0](sc):
            raise ScenarioError(f"constraint {c!r} is physics the scenario must set: use {PHYSICAL_CONSTRAINTS[c][1]}")
    update = {}
    for c, (flag, value) in ACCESS_CONSTRAINTS.items():
        if c in names:
            update[f"federation.{flag}"] = value
        elif c in EXACT_CONSTRAINTS:
            update[f"federation.{flag}"] = not value
    return sc.replace(**update)
