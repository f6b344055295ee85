"""FedJAX on silentfail's stylized linear clients: FedAvg with full participation, each
client running K full-batch projected gradient steps of its proximal local objective,

    theta <- theta - eta Pi (H_c theta - r_c - lam theta_g),

from the global model (``fedavg_numpy.local_steps``), and the reports averaged with
weights n_c (server SGD of rate 1). The clients run through ``fedjax.for_each_client``,
the primitive FedJAX's own algorithms are built on (the global model is its shared
input, so the proximal term sees theta_g), over ``InMemoryFederatedData`` batched by
``ShuffleRepeatBatchHParams`` (one example, K epochs: K full-batch steps), in float64 as
the other peers. One warm-up round compiles the client step; the timed rounds follow.
Runs in its own virtual environment (``benchmarks/peers/build_venv.sh fedjax``), never in
the package's: it reads the clients from an .npz written by ``silentfail bench`` and
writes the final global model and the timings as JSON.

Usage (inside the FedJAX venv):
    python benchmarks/peers/fedjax_fedavg.py CLIENTS.npz OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version

import jax

jax.config.update("jax_enable_x64", True)

import fedjax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def main(data: str, out: str) -> None:
    with np.load(data) as z:
        c = {k: z[k] for k in z.files}
    N, rounds = int(c["H"].shape[0]), int(c["rounds"])
    eta, lam, K = float(c["eta"]), float(c["lam"]), int(c["K"])
    Pi = jnp.asarray(c["Pi"], jnp.float64)
    n = np.asarray(c["n"], np.float64)
    fd = fedjax.InMemoryFederatedData(
        {str(i).encode(): {"H": c["H"][i : i + 1], "r": c["r"][i : i + 1]} for i in range(N)}
    )
    hparams = fedjax.ShuffleRepeatBatchHParams(batch_size=1, num_epochs=K, skip_shuffle=True)

    def client_init(shared, rng):
        return {"theta": shared["theta"], "theta_g": shared["theta"]}

    def client_step(state, batch):
        H, r = batch["H"][0], batch["r"][0]
        theta = state["theta"] - eta * Pi @ (H @ state["theta"] - r - lam * state["theta_g"])
        return {"theta": theta, "theta_g": state["theta_g"]}

    def client_final(shared, state):
        return state["theta"]

    local = fedjax.for_each_client(client_init, client_step, client_final)
    rng = jax.random.PRNGKey(0)

    def one_round(theta):
        clients = [
            (cid, cds.shuffle_repeat_batch(hparams), jax.random.fold_in(rng, i))
            for i, (cid, cds) in enumerate(fd.clients())
        ]
        outs = dict(local({"theta": theta}, clients))
        ids = [str(i).encode() for i in range(N)]
        thetas = np.stack([np.asarray(outs[i]) for i in ids])
        return jnp.asarray((n[:, None] * thetas).sum(0) / n.sum())

    theta0 = jnp.asarray(c["theta0"], jnp.float64)
    jax.block_until_ready(one_round(theta0))  # compile the client step (not timed)
    theta = theta0
    t0 = time.perf_counter()
    for _ in range(rounds):
        theta = one_round(theta)
    jax.block_until_ready(theta)
    rounds_s = time.perf_counter() - t0
    with open(out, "w") as fh:
        json.dump(
            {
                "rounds_s": rounds_s,
                "theta": np.asarray(theta).tolist(),
                "clients": N,
                "rounds": rounds,
                "fedjax": version("fedjax"),
                "jax": jax.__version__,
            },
            fh,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
