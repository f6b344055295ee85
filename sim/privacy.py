"""Differential-privacy accounting of a run with a maintained accountant
(Google's ``dp_accounting``, RDP), never a home-made formula (DESIGN.md section 3).

Central DP: T rounds of the Poisson-subsampled Gaussian mechanism with noise
multiplier z and sampling probability q = max_c q_c (the most exposed client; the
standard DP-FedAvg accounting, exact for Poisson participation and conservative for
the fixed-slot cap). Local DP: each client's report is a Gaussian mechanism on its own
clipped update, composed over the T rounds it may join (no amplification claimed).

References:
    Mironov (2017), Renyi Differential Privacy, CSF.  Abadi et al. (2016), Deep Learning
    with Differential Privacy, CCS.
"""

from __future__ import annotations

import logging
import math

from .scenario import Scenario


def dp_epsilon(sc: Scenario, q_max: float, releases: int = 1) -> float:
    """epsilon at the scenario's delta for its DP mode (inf without DP), composing
    ``releases`` Gaussian mechanisms per round (the update sum and each DP-noised
    secure sum of client reports the server receives; sim/observe.py)."""
    from dp_accounting import dp_event, rdp

    f = sc.federation
    if f.dp == "none":
        return math.inf
    gaussian = dp_event.GaussianDpEvent(f.noise_multiplier)
    if f.dp == "central":
        event = dp_event.PoissonSampledDpEvent(min(1.0, q_max), gaussian)
    else:
        event = gaussian
    acc = rdp.RdpAccountant()
    absl = logging.getLogger("absl")  # orders whose series does not converge are dropped, with a warning each
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        acc.compose(dp_event.SelfComposedDpEvent(event, f.rounds * max(1, releases)))
        return float(acc.get_epsilon(f.dp_delta))
    finally:
        absl.setLevel(level)
