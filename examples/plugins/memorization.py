"""A seventh failure mode as a plugin: memorization, the train-test gap of the
personal models in finite-sample mode.

Client c personalizes on its n_c samples, whose statistics (M_hat_c, m_hat_c) differ
from its population's (M_c, m_c). The squared-loss train-test gap of a model theta is

    gap_c(theta) = R_c(theta) - R_hat_c(theta)
                 = 1/2 theta^T (M_c - M_hat_c) theta - theta^T (m_c - m_hat_c),

exact in finite-sample mode (0 in population mode, where there is no sample). The FM
did not train on the clients' samples, so E gap_c(theta_0) = 0; the mode's round metric
is the clients' pooled growth of the gap over the FM's,

    memorization_t = sum_c w_c [gap_c(theta_c^t) - gap_c(theta_0)] / sum_c w_c,

and it fails when that stays above 0.01 (a point of squared loss). Only the central
audit can watch it (it needs the personal models and the clients' data), so under the
default constraints it is structurally silent. The plugin also adds the mode's node and
edges to the taxonomy (overfitting causes it, no raw data access masks it, the central
audit detects it), so the taxonomy queries answer for it.

Use it with ``silentfail simulate --plugin examples/plugins/memorization.py --set
population.mode=finite`` (or ``phase``, ``check``, ``report``, ``literature``), from
Python with ``silentfail.plugins.load_plugin``, or run it as an example:
``python examples/plugins/memorization.py --samples 20`` (a finite-sample run and the
verdict of all seven modes).

Reference: Zhang, Bengio, Hardt, Recht, Vinyals (2017), Understanding Deep Learning
Requires Rethinking Generalization, ICLR.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp

from silentfail import plugins

THRESHOLD = 0.01


# --8<-- [start:mode]
def squared_loss_gap(theta, pop):
    """Per client, R_c(theta) - R_hat_c(theta) of one model (D,) on every client (or one
    model per client, (N, D)).

    Args:
        theta: (D,) one model for all clients, or (N, D) one per client.
        pop: the population (its exact M, m and the samples' M_train, m_train).

    Returns:
        (N,) the train-test gaps.
    """
    theta = jnp.broadcast_to(theta, pop.m.shape)
    quad = 0.5 * jnp.einsum("ni,nij,nj->n", theta, pop.M - pop.M_train, theta)
    return quad - jnp.einsum("ni,ni->n", theta, pop.m - pop.m_train)


def memorization(view: plugins.RoundView):
    """The round metric: pooled growth of the train-test gap over the FM's.

    Args:
        view: the round (``view.client["train_test_gap"]``: the deployed models' gaps).

    Returns:
        () sum_c w_c [gap_c(theta_c) - gap_c(theta_0)] / sum_c w_c.
    """
    pop = view.pop
    # the deployed models' gaps are a per-client output of the round already; the FM's are the plugin's
    growth = view.client["train_test_gap"] - squared_loss_gap(view.ctx.theta0, pop)
    return jnp.sum(pop.weight * growth) / jnp.sum(pop.weight)


MODE = plugins.Mode(
    id="memorization",
    name="Memorization",
    description="pooled growth of the personal models' train-test gap over the FM's (finite-sample mode)",
    threshold=THRESHOLD,
    metric=memorization,
    reference="Zhang et al. (2017), Understanding Deep Learning Requires Rethinking Generalization, ICLR",
)
plugins.register_mode(MODE)
# --8<-- [end:mode]

TAXONOMY = {
    "schema_version": "1.0",
    "nodes": [
        {
            "id": "memorization",
            "kind": "failure_mode",
            "name": "Memorization",
            "definition": "The personal models fit their clients' samples better than their clients' distributions: "
            "the train-test gap grows over the FM's.",
            "index": 7,
            "layer": "model",
            "metric": "pooled growth of the train-test gap of the personal models over the FM's",
            "worse": "higher",
        },
        {
            "id": "zhang2017understanding",
            "kind": "reference",
            "name": "Understanding Deep Learning Requires Rethinking Generalization",
            "definition": "Understanding Deep Learning Requires Rethinking Generalization",
            "bibtex": "@inproceedings{zhang2017understanding,\n  title = {Understanding Deep Learning Requires "
            "Rethinking Generalization},\n  author = {Zhang, Chiyuan and Bengio, Samy and Hardt, Moritz and Recht, "
            "Benjamin and Vinyals, Oriol},\n  booktitle = {International Conference on Learning Representations},\n"
            "  year = {2017}\n}",
        },
    ],
    "edges": [
        {"kind": "causes", "source": "personal_overfitting", "target": "memorization"},
        {"kind": "masks", "source": "no_raw_data_access", "target": "memorization"},
        {"kind": "masks", "source": "no_personal_model_access", "target": "memorization"},
        {"kind": "detects", "source": "central_audit", "target": "memorization", "scope": "deployed"},
        {"kind": "cites", "source": "memorization", "target": "zhang2017understanding"},
    ],
}

plugins.register_taxonomy_extension(TAXONOMY)


def main(args: argparse.Namespace) -> None:
    """Run the finite-sample default world with the plugin and print the modes' verdicts."""
    import silentfail as sf

    sc = sf.preset("default").replace(
        **{
            "population.mode": "finite",
            "population.samples_per_client": args.samples,
            "population.num_clients": args.clients,
            "federation.clients_per_round": min(100, args.clients),
            "federation.rounds": args.rounds,
            "monitor.calibration_seeds": args.null_runs,
        }
    )
    trace = sf.run(sc, seed=0)
    verdict = sf.verdict(trace, sf.calibrate(sc))
    for m in trace["mode"].values:
        v = verdict.sel(mode=m)
        outcome = "silent" if v["silent"] else "detected" if v["detected"] else "-"
        print(
            f"{m:28s} worst {float(trace['worst_value'].sel(mode=m)):+.4f} "
            f"(threshold {float(trace['threshold'].sel(mode=m)):.3f})  failed: {bool(trace['failed'].sel(mode=m))}  {outcome}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="mean samples per client")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--null-runs", type=int, default=80)
    main(parser.parse_args())
