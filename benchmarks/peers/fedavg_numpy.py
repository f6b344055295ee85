"""The peers' workload in plain NumPy (float64): silentfail's stylized linear clients,
each running K full-batch projected gradient steps of its proximal local objective

    theta <- theta - eta Pi (H_c theta - r_c - lam theta_g)

from the global model, and FedAvg weighting the results by n_c. Shared by the Flower
peer (``flower_fedavg.py``, which runs ``local_steps`` inside Flower's ClientApp) and
by the test that checks the workload against silentfail's engine. No silentfail import:
it runs in the peer's own virtual environment.
"""

from __future__ import annotations

import numpy as np


def local_steps(
    theta_g: np.ndarray, H: np.ndarray, r: np.ndarray, Pi: np.ndarray, eta: float, lam: float, K: int
) -> np.ndarray:
    """K full-batch projected gradient steps of the proximal local objective from theta_g."""
    theta = theta_g.copy()
    for _ in range(K):
        theta = theta - eta * Pi @ (H @ theta - r - lam * theta_g)
    return theta


def fedavg(clients: dict) -> np.ndarray:
    """FedAvg with full participation over ``clients`` (the arrays of the .npz that
    ``silentfail.bench.peer_clients`` writes); returns the final global model."""
    theta = np.asarray(clients["theta0"], np.float64)
    eta, lam, K = float(clients["eta"]), float(clients["lam"]), int(clients["K"])
    n = np.asarray(clients["n"], np.float64)
    for _ in range(int(clients["rounds"])):
        local = np.stack(
            [local_steps(theta, H, r, clients["Pi"], eta, lam, K) for H, r in zip(clients["H"], clients["r"])]
        )
        theta = (n[:, None] * local).sum(0) / n.sum()
    return theta
