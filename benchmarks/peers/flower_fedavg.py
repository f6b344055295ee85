"""Flower's simulation engine on silentfail's stylized linear clients: FedAvg with full
participation, each client running the same K full-batch local steps as silentfail's
personalization rule on its own quadratic (``fedavg_numpy.local_steps``; H_c, r_c from
``silentfail.sim.personalize.local_problem``), weighted by n_c. Runs in
its own virtual environment (``benchmarks/peers/build_venv.sh flower``), never in the
package's: it reads the clients from an .npz written by ``silentfail bench`` and writes
the final global model and the timings as JSON.

Usage (inside the Flower venv):
    python benchmarks/peers/flower_fedavg.py CLIENTS.npz OUT.json
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedavg_numpy import local_steps  # noqa: E402

DATA = os.environ.get("SILENTFAIL_PEER_DATA", "")
_cache: dict = {}


def clients() -> dict:
    if not _cache:
        with np.load(DATA) as z:
            _cache.update({k: z[k] for k in z.files})
    return _cache


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    c = clients()
    cid = int(context.node_config["partition-id"])
    theta_g = msg.content["arrays"].to_numpy_ndarrays()[0].astype(np.float64)
    theta = local_steps(theta_g, c["H"][cid], c["r"][cid], c["Pi"], float(c["eta"]), float(c["lam"]), int(c["K"]))
    content = RecordDict(
        {"arrays": ArrayRecord([theta]), "metrics": MetricRecord({"num-examples": float(c["n"][cid])})}
    )
    return Message(content=content, reply_to=msg)


server_app = ServerApp()
RESULT: dict = {}


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    c = clients()
    N = int(c["H"].shape[0])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=N, min_available_nodes=N)
    t0 = time.perf_counter()
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord([c["theta0"].astype(np.float64)]), num_rounds=int(c["rounds"])
    )
    RESULT["rounds_s"] = time.perf_counter() - t0
    RESULT["theta"] = result.arrays.to_numpy_ndarrays()[0].tolist()


if __name__ == "__main__":
    data, out = sys.argv[1], sys.argv[2]
    os.environ["SILENTFAIL_PEER_DATA"] = DATA = os.path.abspath(data)
    N = int(np.load(DATA)["H"].shape[0])
    t0 = time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=N,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    total = time.perf_counter() - t0
    import flwr

    RESULT.update(total_s=total, clients=N, rounds=int(np.load(DATA)["rounds"]), flwr=flwr.__version__)
    with open(out, "w") as fh:
        json.dump(RESULT, fh)
