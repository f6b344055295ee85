"""pfl-research's simulator (Apple's ``pfl``, PyTorch backend) on silentfail's stylized
linear clients: FedAvg with full participation (a cohort of every client each round),
each client running K full-batch gradient steps (learning rate eta) of its proximal
local objective, the local steps projected by Pi, the reports weighted by n_c, and the
central SGD step of rate 1: the same workload as ``fedavg_numpy.fedavg``. The local
objective is pfl's FedProx with mu = lambda on the data term
0.5 theta^T (H_c - lambda I) theta - r_c^T theta, whose gradient is
H_c theta - r_c - lambda theta_g, silentfail's. Runs in its own virtual environment
(``benchmarks/peers/build_venv.sh pfl``), never in the package's: it reads the clients
from an .npz written by ``silentfail bench`` and writes the final global model and the
timings as JSON.

Usage (inside the pfl venv):
    python benchmarks/peers/pfl_fedavg.py CLIENTS.npz OUT.json
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pfl
import torch
from pfl.aggregate.simulate import SimulatedBackend
from pfl.aggregate.weighting import WeightingStrategy
from pfl.algorithm.fedprox import FedProx, FedProxParams
from pfl.data.dataset import Dataset
from pfl.data.federated_dataset import FederatedDataset
from pfl.data.sampling import get_user_sampler
from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
from pfl.metrics import Metrics
from pfl.model.pytorch import PyTorchModel

torch.set_default_dtype(torch.float64)


class Quadratic(torch.nn.Module):
    """A client's data term 0.5 theta^T (H - lambda I) theta - r^T theta, with the
    gradient projected by Pi (a hook on the parameter)."""

    def __init__(self, theta0: np.ndarray, Pi: np.ndarray, lam: float) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta0))
        self.lam = lam
        Pi_t = torch.tensor(Pi)
        self.theta.register_hook(lambda g: Pi_t @ g)

    def loss(self, H: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        t = self.theta
        return 0.5 * t @ (H[0] @ t) - 0.5 * self.lam * t @ t - r[0] @ t

    @torch.no_grad()
    def metrics(self, H: torch.Tensor, r: torch.Tensor) -> dict:
        return {}


class WeightByN(WeightingStrategy):
    """FedAvg's weights n_c (a client's dataset here is its local problem, one row)."""

    def __init__(self, n: np.ndarray) -> None:
        self.n = n

    def postprocess_one_user(self, *, stats, user_context):
        stats.reweight(float(self.n[int(user_context.user_id)]))
        return stats, Metrics()


def main(data: str, out: str) -> None:
    with np.load(data) as z:
        c = {k: z[k] for k in z.files}
    N, rounds = int(c["H"].shape[0]), int(c["rounds"])
    eta, lam, K = float(c["eta"]), float(c["lam"]), int(c["K"])
    H = torch.tensor(c["H"])
    r = torch.tensor(c["r"])

    def make_dataset(cid):
        return Dataset(raw_data=[H[cid : cid + 1], r[cid : cid + 1]], user_id=cid)

    federated = FederatedDataset(make_dataset, get_user_sampler("minimize_reuse", list(range(N))))
    module = Quadratic(c["theta0"].astype(np.float64), c["Pi"].astype(np.float64), lam)
    model = PyTorchModel(
        model=module,
        local_optimizer_create=torch.optim.SGD,
        central_optimizer=torch.optim.SGD(module.parameters(), 1.0),
    )
    backend = SimulatedBackend(training_data=federated, val_data=federated, postprocessors=[WeightByN(c["n"])])
    params = FedProxParams(
        central_num_iterations=rounds, evaluation_frequency=rounds + 1, train_cohort_size=N, val_cohort_size=0, mu=lam
    )
    t0 = time.perf_counter()
    FedProx().run(
        algorithm_params=params,
        backend=backend,
        model=model,
        model_train_params=NNTrainHyperParams(local_learning_rate=eta, local_num_epochs=K, local_batch_size=None),
        model_eval_params=NNEvalHyperParams(local_batch_size=None),
    )
    rounds_s = time.perf_counter() - t0
    with open(out, "w") as fh:
        json.dump(
            {
                "rounds_s": rounds_s,
                "theta": module.theta.detach().numpy().tolist(),
                "clients": N,
                "rounds": rounds,
                "pfl": pfl.__version__,
                "torch": torch.__version__,
            },
            fh,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
