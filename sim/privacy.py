"""Differential-privacy accounting of a run, for the mechanism the engine simulates,
with a maintained accountant (Google's ``dp_accounting``), never a home-made formula.

What one round releases (``sim/mechanism.py``, ``sim/observe.py``): over *one*
participant mask S_t, the secure sum of the clipped updates and, as the constraint set
allows, the secure sums of the clients' accuracy reports, group-stratified reports and
federated-evaluation reports. Each is a Gaussian mechanism: a sum of per-client vectors
of L2 norm <= s_i plus N(0, (z s_i)^2 I). Blocked observables are not released and cost
nothing.

Central DP (``federation.dp = "central"``):

* Adjacency: add or remove one client (user-level DP; McMahan et al. 2018).
* Sampling: Poisson, client c joins with probability q_c (1 - dropout), independently
  across clients and rounds; there are no report slots (the scenario must set
  ``clients_per_round = num_clients``, so nothing truncates the sample). The accountant
  takes q = max_c q_c (1 - dropout), the most exposed client.
* No exact count leaves the round: the number of reports is released with N(0, z^2)
  noise (sensitivity 1), and the server divides the sums by it (the noised count is one
  more release, ``participant_counts``). Dividing by the expected count instead (the
  fixed-denominator estimator of McMahan et al. 2018) would cost nothing but puts a
  relative error of about 1 / sqrt(E|S_t|) on every reported mean (10% at 100 reports,
  measured: it hid the aggregate-masking effect the detectors are tested on).
* The releases of a round share the mask, so a round is ONE Poisson-subsampled event of
  the composed Gaussians, ``PoissonSampled(q, Composed([Gaussian(z / m)] * k +
  [Gaussian(z)]))`` (k noised sums and the count), and the run is T of those. With the
  secure-aggregation threshold m a round whose count is below m withholds every
  contribution but still releases its noise; adding the m-th client then releases m
  contributions at once, so the sensitivity of a sum is m s_i and its accounted noise
  multiplier is z / m (z for m = 1); the count's sensitivity stays 1.

Local DP (``federation.dp = "local"``):

* Adjacency: replace one client's data (the local model: any two inputs of one client's
  randomizer); a client's presence and the participant count are not protected.
* Each released vector of norm <= s_i gets N(0, (z s_i)^2 I) on the client, and two
  inputs differ by at most 2 s_i, so each release is Gaussian(z / 2); a client's k
  releases per round compose, over the T rounds it may join (no amplification claimed).

The epsilon reported is the RDP accountant's (``dp_accounting.rdp``); the PLD
accountant (``dp_accounting.pld``) gives a tighter epsilon of the same event
(:func:`account` with ``accountant="pld"``; a test checks PLD <= RDP). For the PLD the
composed Gaussians of a round are one Gaussian of multiplier (sum_i z_i^-2)^(-1/2)
(the joint mechanism on the stacked releases, exactly; the PLD accountant does not
subsample composed events).

Centralized rounds on public data (``federation.public_schedule``) release no client
contribution; they are still accounted (conservative).

References:
    Mironov (2017), Renyi Differential Privacy, CSF.  Abadi et al. (2016), Deep Learning
    with Differential Privacy, CCS.  McMahan, Ramage, Talwar, Zhang (2018), Learning
    Differentially Private Recurrent Language Models, ICLR.  Doroshenko, Ghazi, Kamath,
    Kumar, Manurangsi (2022), Connect the Dots: Tighter Discrete Approximations of
    Privacy Loss Distributions, PETS.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass

from .observe import accounted_releases
from .scenario import Scenario

#: Adjacency notion of each DP mode.
ADJACENCY = {"central": "add_or_remove_one_client", "local": "replace_one_client"}


@dataclass(frozen=True)
class Accounting:
    """The privacy guarantee of one run and exactly what it accounts."""

    epsilon: float  # inf without DP
    delta: float
    dp: str  # none | central | local
    adjacency: str
    sampling: str
    sampling_probability: float  # q of the accountant (1 for local DP: no amplification)
    rounds: int
    releases: tuple[str, ...]  # the accounted releases of one round (taxonomy observable ids)
    noise_multipliers: tuple[float, ...]  # accounted multiplier of each release (noise std / sensitivity)
    count_release: str  # how the server learns the number of reports
    accountant: str

    def attrs(self) -> dict:
        """Flat ``dp_*`` attributes for a NetCDF trace (tuples as JSON lists).

        Returns:
            ``{dp_epsilon, dp_delta, dp_mode, dp_releases, dp_noise_multipliers, ...}``.
        """
        out = {f"dp_{k}": v for k, v in asdict(self).items() if k != "dp"}
        out["dp_mode"] = self.dp
        out["dp_releases"] = json.dumps(list(self.releases))
        out["dp_noise_multipliers"] = json.dumps(list(self.noise_multipliers))
        return out

    @classmethod
    def from_attrs(cls, attrs: dict) -> Accounting:
        """The accounting a trace recorded (:meth:`attrs`).

        Args:
            attrs: a trace's attrs.

        Returns:
            The Accounting.
        """
        return cls(
            epsilon=float(attrs["dp_epsilon"]),
            delta=float(attrs["dp_delta"]),
            dp=str(attrs["dp_mode"]),
            adjacency=str(attrs["dp_adjacency"]),
            sampling=str(attrs["dp_sampling"]),
            sampling_probability=float(attrs["dp_sampling_probability"]),
            rounds=int(attrs["dp_rounds"]),
            releases=tuple(json.loads(attrs["dp_releases"])),
            noise_multipliers=tuple(json.loads(attrs["dp_noise_multipliers"])),
            count_release=str(attrs["dp_count_release"]),
            accountant=str(attrs["dp_accountant"]),
        )

    def describe(self) -> str:
        """One line: epsilon, delta, adjacency, sampling and the releases.

        Returns:
            The line.
        """
        if self.dp == "none":
            return "DP: none (epsilon = inf); the participant count is released exactly"
        return (
            f"DP ({self.dp}): epsilon = {self.epsilon:.3f} at delta = {self.delta:g} ({self.accountant}); "
            f"adjacency {self.adjacency}; {self.sampling}; {self.rounds} rounds of "
            f"{len(self.releases)} releases ({', '.join(self.releases)}); count: {self.count_release}"
        )


def describe_attrs(attrs: dict) -> str:
    """:meth:`Accounting.describe` of a trace's attributes (older traces carry only epsilon).

    Args:
        attrs: a trace's ``attrs``.

    Returns:
        One line: epsilon, delta, the adjacency, sampling and releases accounted.
    """
    if "dp_mode" in attrs:
        return Accounting.from_attrs(attrs).describe()
    eps = float(attrs["dp_epsilon"])
    return "DP: none" if not math.isfinite(eps) else f"DP: epsilon = {eps:.3f} at delta = {float(attrs['dp_delta']):g}"


def sampling_probability(sc: Scenario, q_max: float) -> float:
    """The accountant's q: the largest probability that a client's report enters a round.

    Args:
        sc: the scenario.
        q_max: max_c q_c, the largest participation probability.

    Returns:
        min(1, q_max (1 - dropout)).
    """
    return min(1.0, float(q_max) * (1.0 - sc.federation.dropout))


def releases(sc: Scenario) -> tuple[str, ...]:
    """The accounted releases of one round (taxonomy observable ids): the noised sums the
    access allows, and under central DP the noised participant count.

    Args:
        sc: the scenario (its DP mode and the access its constraints leave).

    Returns:
        The released observables' ids.
    """
    f = sc.federation
    if f.dp == "none":
        return ()
    return accounted_releases(sc) + (("participant_counts",) if f.dp == "central" else ())


def noise_multipliers(sc: Scenario) -> tuple[float, ...]:
    """Accounted noise multiplier (noise std over sensitivity) of each release of a round.

    Args:
        sc: the scenario.

    Returns:
        One multiplier per :func:`releases` entry.
    """
    f = sc.federation
    if f.dp == "none":
        return ()
    z = f.noise_multiplier / (f.secagg_min if f.dp == "central" else 2.0)
    return tuple(f.noise_multiplier if name == "participant_counts" else z for name in releases(sc))


def round_event(sc: Scenario, q: float):
    """The ``dp_accounting`` event of one round (None without DP).

    Args:
        sc: the scenario.
        q: the sampling probability (:func:`sampling_probability`).

    Returns:
        The composed Gaussian releases (``dp_accounting`` events), Poisson-sampled with
        probability q under central DP, unsampled under local DP; None without DP.
    """
    from dp_accounting import dp_event

    f = sc.federation
    if f.dp == "none":
        return None
    composed = dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(z) for z in noise_multipliers(sc)])
    if f.dp == "central":
        return dp_event.PoissonSampledDpEvent(q, composed)
    return composed


def run_event(sc: Scenario, q: float):
    """T rounds of :func:`round_event`.

    Args:
        sc: the scenario (``federation.rounds`` = T).
        q: the sampling probability.

    Returns:
        ``dp_accounting.SelfComposedDpEvent(round_event, T)``, or None without DP.
    """
    from dp_accounting import dp_event

    one = round_event(sc, q)
    return None if one is None else dp_event.SelfComposedDpEvent(one, sc.federation.rounds)


def effective_multiplier(multipliers: tuple[float, ...]) -> float:
    """The one Gaussian equivalent to composed Gaussians on the same input: (sum_i z_i^-2)^(-1/2).

    Args:
        multipliers: the noise multipliers z_i (at least one) of releases of one input.

    Returns:
        The equivalent single multiplier.
    """
    return sum(z**-2 for z in multipliers) ** -0.5


def _epsilon(sc: Scenario, q: float, accountant: str) -> float:
    from dp_accounting import dp_event, pld, rdp

    f = sc.federation
    if accountant == "rdp":
        acc = rdp.RdpAccountant()
        event = run_event(sc, q)
    elif accountant == "pld":
        acc = pld.PLDAccountant()
        gauss = dp_event.GaussianDpEvent(effective_multiplier(noise_multipliers(sc)))
        one = dp_event.PoissonSampledDpEvent(q, gauss) if f.dp == "central" else gauss
        event = dp_event.SelfComposedDpEvent(one, f.rounds)
    else:
        raise ValueError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
    absl = logging.getLogger("absl")  # orders whose series does not converge are dropped, with a warning each
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        acc.compose(event)
        return float(acc.get_epsilon(f.dp_delta))
    finally:
        absl.setLevel(level)


def account(sc: Scenario, q_max: float, accountant: str = "rdp") -> Accounting:
    """The privacy guarantee of a run of ``sc`` whose largest participation probability
    is ``q_max`` (``max_c q_c``, before dropout).

    Args:
        sc: the scenario.
        q_max: the largest participation probability.
        accountant: ``rdp`` or ``pld`` (dp_accounting's accountants).

    Returns:
        Accounting: epsilon at ``dp_delta``, and what was accounted (adjacency, sampling,
        q, rounds, releases and their multipliers, the count release).
    """
    f = sc.federation
    if f.dp == "central":
        q = sampling_probability(sc, q_max)
        sampling = f"Poisson sampling, q = max_c q_c (1 - dropout) = {q:.4g}, no report slots"
        count = f"released with N(0, {f.noise_multiplier:g}^2) noise and accounted; sums are divided by it"
    elif f.dp == "local":
        q = 1.0
        sampling = "every round a client may join (no amplification by sampling)"
        count = "released exactly (local DP does not protect participation)"
    else:
        q = sampling_probability(sc, q_max)
        sampling = "none accounted"
        count = "released exactly"
    eps = math.inf if f.dp == "none" else _epsilon(sc, q, accountant)
    return Accounting(
        epsilon=eps,
        delta=float(f.dp_delta),
        dp=f.dp,
        adjacency=ADJACENCY.get(f.dp, "none"),
        sampling=sampling,
        sampling_probability=q,
        rounds=f.rounds,
        releases=releases(sc),
        noise_multipliers=noise_multipliers(sc),
        count_release=count,
        accountant=f"dp_accounting.{accountant}",
    )


def dp_epsilon(sc: Scenario, q_max: float) -> float:
    """epsilon at the scenario's delta (inf without DP): :func:`account`'s RDP epsilon.

    Args:
        sc: the scenario.
        q_max: the largest participation probability.

    Returns:
        epsilon.
    """
    return account(sc, q_max).epsilon


def max_participation(sc: Scenario, seed: int = 0) -> float:
    """The accountant's q for a scenario: the largest participation probability of its
    clients, max_c q_c (``population.participation``). Without participation disparity
    that is ``federation.participation``; with it, q_c depends on each client's minority
    share and the maximum is that of the population of ``seed`` (what ``run(sc, seed)``
    accounts).

    Args:
        sc: the scenario.
        seed: the population's seed.

    Returns:
        max_c q_c.
    """
    if sc.federation.participation_disparity == 0:
        return sc.federation.participation
    import jax

    from .population import build_population

    return float(build_population(sc, jax.random.split(jax.random.key(seed))[0])[1].q.max())
