"""What the server sees (the silentfail reference paper (paper/main.tex), The six modes: detection and silence).

The round function computes every observable; this module decides which of them the
scenario's constraint set lets the server see. Access and observable ids are the
taxonomy's (``silentfail.taxonomy``: ``Access`` and ``Observable`` nodes and their
``requires`` edges; a test checks they agree). An observable whose access a
constraint blocks is absent from the trace, never zero-filled.

Observables (round-output key -> taxonomy observable):

* ``obs_update_sum`` / ``obs_weight_sum``: the noised secure sum of updates and of weights.
* ``obs_report``: secure sum (DP-noised) of the participants' accuracy on their own data.
* ``obs_group``: secure sums per group of mass, correct mass, predicted-positive and
  positive-label mass (needs the clients' attribute).
* ``obs_global``: the server's exact evaluation of the global model on the public probe
  set (alignment score) and the public P0 sample (accuracy).
* ``obs_fedeval``: secure sums (DP-noised) of the personal models' probe alignment, P0
  accuracy, ECE and within-round drop, computed on the clients.
* ``obs_count``: the number of reports per round: exact without DP and under local DP;
  under central DP released with Gaussian noise and accounted (``sim/privacy.py``).
* ``obs_inspect``: statistics of the individual updates (needs per-client values).
* ``obs_audit``: the six mode metrics of the personal models (needs the personal models
  and the clients' data: the oracle).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from .scenario import MODES, Scenario

ACCESS = (
    "per_client_values",
    "personalized_models",
    "raw_client_data",
    "group_labels",
    "global_model",
    "public_probe_set",
    "secure_sums",
)


class Observable(NamedTuple):
    """An observable: the round-output keys it is made of, the access it requires, and its trace dims."""

    keys: tuple[str, ...]  # round-output keys
    requires: tuple[str, ...]  # taxonomy access ids
    dims: tuple[tuple[str, ...], ...]  # trace dims after "round", one per key


OBSERVABLES: dict[str, Observable] = {
    "noised_update_sum": Observable(("obs_update_sum", "obs_weight_sum"), ("secure_sums",), (("param",), ())),
    "aggregate_metrics": Observable(("obs_report",), ("secure_sums",), (("report_stat",),)),
    "group_stratified_metrics": Observable(("obs_group",), ("secure_sums", "group_labels"), (("group_stat", "group"),)),
    "global_probe_scores": Observable(("obs_global",), ("global_model", "public_probe_set"), (("probe_score",),)),
    "federated_eval_reports": Observable(("obs_fedeval",), ("secure_sums", "public_probe_set"), (("fedeval_stat",),)),
    "participant_counts": Observable(("obs_count",), (), ((),)),
    "individual_updates": Observable(("obs_inspect",), ("per_client_values",), (("inspect_stat",),)),
    "personal_model_audit": Observable(("obs_audit",), ("personalized_models", "raw_client_data"), (("mode",),)),
}

#: Coordinates of the observables' own dims.
OBS_COORDS = {
    "report_stat": ["acc"],
    "group_stat": ["mass", "correct", "pred_pos", "label_pos"],
    "probe_score": ["alignment", "p0_acc"],
    "fedeval_stat": ["alignment", "p0_acc", "ece", "misalignment"],
    "inspect_stat": ["align_proj_max", "spu_proj_max", "norm_max"],
    "mode": MODES,  # live: every registered mode
}

#: DP-noised secure sums released each round, for the privacy accounting.
NOISED = ("noised_update_sum", "aggregate_metrics", "group_stratified_metrics", "federated_eval_reports")


def available_access(sc: Scenario) -> frozenset[str]:
    """The access the scenario's constraints leave the server. The server always holds
    the global model and secure sums; each flag of ``federation`` adds or removes one
    (secure_aggregation blocks per-client values; no_attribute_use blocks group labels;
    no_personal_model_access and no_raw_data_access block the rest).

    Args:
        sc: the scenario.

    Returns:
        The access ids.
    """
    f = sc.federation
    acc = {"global_model", "secure_sums"}
    if not f.secure_aggregation:
        acc.add("per_client_values")
    if f.attribute_use:
        acc.add("group_labels")
    if f.public_probe:
        acc.add("public_probe_set")
    if f.personal_model_access:
        acc.add("personalized_models")
    if f.raw_data_access:
        acc.add("raw_client_data")
    return frozenset(acc)


def available_observables(sc: Scenario) -> tuple[str, ...]:
    """The observables whose required access the scenario's constraints leave.

    Args:
        sc: the scenario.

    Returns:
        The observable ids.
    """
    acc = available_access(sc)
    return tuple(name for name, ob in OBSERVABLES.items() if set(ob.requires) <= acc)


def accounted_releases(sc: Scenario) -> tuple[str, ...]:
    """The DP-noised secure sums one round releases (each a Gaussian mechanism, all over
    the same participant mask): the observables of :data:`NOISED` the access allows.

    Args:
        sc: the scenario.

    Returns:
        The observable ids.
    """
    return tuple(name for name in available_observables(sc) if name in NOISED)


def observed_keys(sc: Scenario) -> tuple[str, ...]:
    """The round-output keys of the available observables (what the trace keeps of the server's view).

    Args:
        sc: the scenario.

    Returns:
        The round-output keys.
    """
    return tuple(k for name in available_observables(sc) for k in OBSERVABLES[name].keys)


def client_reports(pc: dict, misalign: Array, ece: Array, flip: Array | None = None) -> dict:
    """What each client computes on its own deployed model for the server's secure sums
    (rows: clients): its accuracy on its own data (``report``); per group its mass,
    correct mass, predicted-positive mass and positive-label mass (``group``, needs the
    attribute); its scores on the public probes and P0, its ECE (of the mode's kind) and
    within-round drop (``fedeval``).

    Under label noise (``flip``, rho_a) a client sees only its observed labels, so the
    accuracy and the correct and positive-label masses it reports are against them:
    correct mass rho_a P(a) + (1 - 2 rho_a) (clean correct mass), positive-label mass
    (1 - rho_a) pi(+, a) + rho_a pi(-, a) (``world.label_noise_risk``).

    Args:
        pc: the per-client outputs of the round (``ground_truth.client_pass``).
        misalign: (N,) the within-round drops.
        ece: (N,) the clients' ECE of the mode's kind.
        flip: (G,) the label flip rates, or None (clean labels).

    Returns:
        ``{report: (N, 1), group: (N, 4, G), fedeval: (N, 4)}``.
    """
    pi, mass = pc["pi"], pc["group_mass"]
    pos_mass = pi[:, 1, :] * pc["tpr"] + pi[:, 0, :] * pc["fpr"]
    correct, positive, acc = pc["group_acc"] * mass, pi[:, 1, :], pc["acc"]
    if flip is not None:
        correct = flip * mass + (1.0 - 2.0 * flip) * correct
        positive = (1.0 - flip) * pi[:, 1, :] + flip * pi[:, 0, :]
        acc = correct.sum(-1)
    group = jnp.stack([mass, correct, pos_mass, positive], axis=1)  # (N, 4, G)
    return dict(
        report=acc[:, None],
        group=group,
        fedeval=jnp.stack([pc["alignment"], pc["p0_acc"], ece, misalign], axis=-1),
    )


def inspect_updates(delta: Array, mask: Array, directions: tuple[Array, Array]) -> Array:
    """What a server that sees every update can compute: the largest projection on the
    alignment direction, the largest |projection| on the spurious direction, and the
    largest norm among the participants' updates (NaN in a round without reports).

    Args:
        delta: (N, D) the updates.
        mask: (N,) the participants.
        directions: the alignment and spurious directions in parameter space (the client
            model's, ``models.param_directions``).

    Returns:
        (3,) the three maxima.
    """
    d_align, d_spu = directions
    stats = jnp.stack(
        [
            delta @ d_align,
            jnp.abs(delta @ d_spu),
            jnp.linalg.norm(delta, axis=-1),
        ],
        axis=-1,
    )
    top = jnp.max(jnp.where(mask[:, None] > 0, stats, -jnp.inf), axis=0)
    return jnp.where(mask.sum() > 0, top, jnp.nan)
