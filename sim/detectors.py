"""Detectors: pure functions of the observable trace -> per-round statistics -> alarm
rounds, each declaring the access it requires (paper/main.tex, The six modes).

A detector has one or more *channels*: a per-round statistic s_t (larger = worse)
and the failure modes it watches (the taxonomy's ``detects`` edges; a test checks they
agree). A channel alarms at the first round with s_t > h. The thresholds h of a
detector's channels are calibrated together on null runs (same constraints, no shift)
so that the detector's false-alarm rate over the horizon is at most alpha
(:func:`calibrate`, split conformal), and the achieved rate is measured on
held-out null runs.

Statistics (server-known constants: the FM's public probe alignment A(theta_0) and P0
accuracy, the public directions u and mu_spu, the DP noise scale):

* ``aggregate_monitor``: drop of the reported mean accuracy since round 0 (the
  baseline of every FL benchmark; it watches no mode: a mean hides the modes).
* ``group_stratified_monitor``: growth of the accuracy gap between groups and drop of
  the worst group's accuracy (fairness collapse); directional bias amplification
  from the group-stratified predicted-positive and label rates (amplified bias).
* ``server_probe_eval``: A(theta_0) - A(theta_g^t) (erosion) and the P0 accuracy drop of
  the global model (out-of-domain) on the public sets.
* ``federated_evaluation``: the same drops averaged over the personal models, their mean
  ECE (miscalibration) and mean within-round drop (misalignment), via DP secure sums.
* ``update_direction_monitor``: cumulative projection of the mean aggregate update on
  the alignment direction (erosion) and its |projection| on the spurious direction (bias).
* ``cusum_detector``: one-sided CUSUM S_t = max(0, S_{t-1} + (v_{t-1} - v_t)/sigma - k) on
  the reported mean accuracy and the global alignment score (Page 1954).
* ``bayesian_changepoint``: log posterior odds that a downward change has happened by
  round t in the reported mean accuracy and in the global alignment score, with the
  public DP noise scale (plus the floor) as the known noise (``changepoint.py``).
* ``update_inspection``: the largest projection / norm among the individual updates.
* ``central_audit``: the six mode metrics of the personal models themselves (the oracle).

References:
    Page (1954), Continuous Inspection Schemes, Biometrika.  Vovk, Gammerman, Shafer
    (2005), Algorithmic Learning in a Random World (conformal quantiles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .changepoint import changepoint_log_odds
from .mechanism import REPORT_SENSITIVITY, report_noise_std
from .metrics import directional_bias_amplification
from .observe import OBSERVABLES, available_access
from .registry import DETECTOR_NAMES, DETECTORS, MODES, check_new_id
from .scenario import Scenario
from .world import ALIGN_AXIS, SPU_AXIS

CUSUM_K = 0.5  # reference value (drift allowance) in noise standard deviations
CUSUM_FLOOR = 0.005  # sigma of a stream without DP noise
CHANGE_SCALE_ACC = 0.05  # prior scale of a change of the mean reported accuracy


class Public(NamedTuple):
    """What the server knows without any client: the FM's scores on the public sets."""

    fm_alignment: Array
    fm_p0_acc: Array


class Channel(NamedTuple):
    """One statistic of a detector and the modes it watches (the taxonomy's detects edges)."""

    name: str
    watches: tuple[str, ...]


class Detector(NamedTuple):
    """A detector: its taxonomy id, the observables it reads, its channels and its statistic."""

    name: str  # taxonomy id
    observables: tuple[str, ...]  # taxonomy observable ids
    channels: tuple[Channel, ...]
    statistic: Callable[[dict, Public, Scenario], Array]  # -> (T, len(channels))

    @property
    def requires(self) -> tuple[str, ...]:
        """The access the detector's observables require (taxonomy access ids)."""
        return tuple(sorted({a for ob in self.observables for a in OBSERVABLES[ob].requires}))


def ffill(x: Array) -> Array:
    """Carry the last released value over rounds that released nothing (NaN) along axis
    0; leading NaNs take the first released value.

    Args:
        x: (T, ...) values over rounds, NaN where nothing was released.

    Returns:
        x with every NaN replaced by the last released value (all NaN stays NaN).
    """
    finite = jnp.isfinite(x)
    first = jnp.take_along_axis(x, jnp.argmax(finite, axis=0)[None], axis=0)[0]

    def step(prev, cur):
        new = jnp.where(jnp.isfinite(cur), cur, prev)
        return new, new

    return jax.lax.scan(step, first, x)[1]


def _mean(total: Array, count: Array) -> Array:
    """Per-round mean of a secure sum over the participants (NaN-carried)."""
    c = count.reshape(count.shape + (1,) * (total.ndim - 1))
    return ffill(jnp.where(c > 0, total / jnp.maximum(c, 1.0), jnp.nan))


def aggregate_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """The aggregate performance monitor: the drop of the reported mean accuracy since
    round 0,

        s_t = Abar_0 - Abar_t,  Abar_t = (secure sum of the participants' accuracies + noise) / count_t,

    carried over rounds that released nothing. It watches no mode: a mean over clients
    hides every one of them (McMahan et al. 2017 report exactly this metric).

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 1) the statistic per round.
    """
    acc = _mean(obs["obs_report"], obs["obs_count"])[:, 0]
    return (acc[0] - acc)[:, None]


def group_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """The group-stratified secure-aggregated monitor: from the DP-noised per-group sums
    of mass, correct, predicted-positive and positive-label mass, the group accuracies
    Acc_a, the growth of their gap and the drop of the worst one (fairness collapse), and
    the directional bias amplification of the noised group rates (amplified bias):

        s_t = [gap_t - gap_0,  min_a Acc_a,0 - min_a Acc_a,t,  BA(P(yhat=1 | a), P(y=1 | a))],
        gap_t = max_a Acc_a,t - min_a Acc_a,t.

    A noised mass below half a client is treated as half a client (no information).

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 3) the three channels per round.

    References:
        Hardt, Price, Srebro (2016), Equality of Opportunity in Supervised Learning, NeurIPS.
        Wang, Russakovsky (2021), Directional Bias Amplification, ICML.
    """
    g = ffill(obs["obs_group"])  # (T, 4, G): mass, correct, pred_pos, label_pos
    mass = jnp.maximum(g[:, 0], 0.5)  # a noised mass below half a client is no information
    acc, ppr, lr = (jnp.clip(g[:, i] / mass, 0.0, 1.0) for i in (1, 2, 3))
    gap = acc.max(-1) - acc.min(-1)
    worst = acc.min(-1)
    # the ground truth's bias amplification on the noised group rates (every group counts)
    amp = directional_bias_amplification(ppr.T, lr.T, mass.T, jnp.ones(mass.T.shape, bool))
    return jnp.stack([gap - gap[0], worst[0] - worst, amp], axis=-1)


def probe_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """The server's own evaluation of the global model on its public probe set and P0
    sample: s_t = [A(theta_0) - A(theta_g^t),  Acc_P0(theta_0) - Acc_P0(theta_g^t)]
    (alignment erosion and out-of-domain degradation of the global model; exact, no noise).

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 2) the two channels per round.
    """
    g = obs["obs_global"]
    return jnp.stack([pub.fm_alignment - g[:, 0], pub.fm_p0_acc - g[:, 1]], axis=-1)


def fedeval_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """Federated evaluation: the clients evaluate their personal models and report
    through DP secure sums; the means over the participants give

        s_t = [A(theta_0) - mean_c A(theta_c),  Acc_P0(theta_0) - mean_c Acc_P0(theta_c),
               mean_c ECE_c,  mean_c Delta_c^mis]

    (erosion, out-of-domain degradation, miscalibration and adaptation misalignment of
    the deployed models; a mean, so a worst-decile failure can hide in it).

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 4) the four channels per round.
    """
    m = _mean(obs["obs_fedeval"], obs["obs_count"])  # alignment, p0_acc, ece, misalignment
    return jnp.stack([pub.fm_alignment - m[:, 0], pub.fm_p0_acc - m[:, 1], m[:, 2], m[:, 3]], axis=-1)


def direction_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """The update-direction monitor: the cumulative projection of the noised mean
    aggregate update u_t on the public alignment direction (erosion) and the absolute
    cumulative projection on the public spurious direction (amplified bias),

        s_t = [sum_(r<=t) u_r . e_align,  |sum_(r<=t) u_r . e_spu|].

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 2) the two channels per round.
    """
    u = obs["obs_update_sum"] / jnp.maximum(obs["obs_weight_sum"], 1e-12)[:, None]
    return jnp.stack([jnp.cumsum(u[:, ALIGN_AXIS]), jnp.abs(jnp.cumsum(u[:, SPU_AXIS]))], axis=-1)


def cusum(v: Array, sigma: Array, k: float = CUSUM_K) -> Array:
    """One-sided CUSUM for a decrease of the stream v_t: S_0 = 0,
    S_t = max(0, S_{t-1} + (v_{t-1} - v_t) / sigma_t - k).

    Args:
        v: (T,) or (T, k) the stream (NaN-free: carried forward by :func:`ffill`).
        sigma: its noise standard deviation per round (broadcast against ``v``).
        k: the reference value (drift allowance) in noise standard deviations.

    Returns:
        S_t over rounds, the shape of ``v``.

    Reference:
        Page (1954), Continuous Inspection Schemes, Biometrika 41.
    """
    x = jnp.concatenate([jnp.zeros(1), (v[:-1] - v[1:]) / sigma[1:]]) - k

    def step(s, xt):
        s = jnp.maximum(0.0, s + xt)
        return s, s

    return jax.lax.scan(step, jnp.zeros(()), x.at[0].set(0.0))[1]


def _acc_stream(obs: dict, sc: Scenario) -> tuple[Array, Array]:
    """The reported mean accuracy and the std of one round's mean from the public DP noise
    scale of the secure sum (0 without DP)."""
    count = obs["obs_count"]
    acc = _mean(obs["obs_report"], count)[:, 0]
    return acc, report_noise_std(sc, REPORT_SENSITIVITY["report"], count) / jnp.maximum(count, 1.0)


def cusum_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """Sequential change detection on the reported mean accuracy and on the global
    model's probe alignment, each a one-sided CUSUM (:func:`cusum`)

        s_t = max(0, s_{t-1} + (v_{t-1} - v_t) / sigma_t - k),   k = ``CUSUM_K``,

    with sigma_t the public DP noise of a difference of two rounds' means (sqrt(2) times
    that of one, floored at ``CUSUM_FLOOR``) for the accuracy, and the floor for the
    alignment.

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 2) the two CUSUM paths.

    References:
        Page (1954), Continuous Inspection Schemes, Biometrika 41.
    """
    acc, sd_mean = _acc_stream(obs, sc)
    sigma_acc = jnp.maximum(jnp.sqrt(2.0) * sd_mean, CUSUM_FLOOR)  # sd of the difference of two means
    align = obs["obs_global"][:, 0]
    return jnp.stack([cusum(acc, sigma_acc), cusum(align, jnp.full_like(align, CUSUM_FLOOR))], axis=-1)


def changepoint_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """Bayesian change-point detection: the log posterior odds

        s_t = log P(tau <= t | v_0..v_t) - log P(tau > t | v_0..v_t)

    that a downward change has happened by round t
    (:func:`silentfail.sim.changepoint.changepoint_log_odds`), in the
    reported mean accuracy (known noise variance: the public DP noise of the mean plus
    the floor; change prior scale ``CHANGE_SCALE_ACC``) and in the global alignment
    (floor; change prior scale the erosion threshold), with hazard 1/T.

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 2) the two log-odds paths.

    References:
        Adams, MacKay (2007), Bayesian Online Changepoint Detection, arXiv:0710.3742.
        Smith (1975), A Bayesian approach to inference about a change-point, Biometrika 62.
    """
    acc, sd_mean = _acc_stream(obs, sc)
    align = obs["obs_global"][:, 0]
    hazard = 1.0 / sc.federation.rounds
    floor = jnp.full_like(align, CUSUM_FLOOR**2)  # the clients' sampling variation
    return jnp.stack(
        [
            changepoint_log_odds(acc, sd_mean**2 + floor, CHANGE_SCALE_ACC, hazard),
            changepoint_log_odds(align, floor, sc.thresholds.alignment_erosion, hazard),
        ],
        axis=-1,
    )


def inspection_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """Update inspection (needs per-client values: no secure aggregation): over the
    participants' updates Delta_c,

        s_t = [max_c Delta_c . e_align,  max_c |Delta_c . e_spu|,  max_c |Delta_c|].

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, 3) the three channels per round (carried over rounds with no participant).
    """
    return ffill(obs["obs_inspect"])


def audit_statistic(obs: dict, pub: Public, sc: Scenario) -> Array:
    """The central audit (the oracle; needs the personal models and the raw data): the
    mode metrics of the deployed models themselves, s_t = [metric_m(theta_1:N,t)]_m,
    before the FM's reference values are subtracted
    (:func:`silentfail.sim.ground_truth.round_metrics`).

    Args:
        obs: the observable trace, ``obs_*`` arrays over rounds (leading axis T): what the
            constraints let the server see (sim/observe.py).
        pub: the server-known constants (the FM's probe alignment and P0 accuracy).
        sc: the scenario (for the public DP noise scale and the horizon).

    Returns:
        (T, modes) one channel per registered mode.
    """
    return obs["obs_audit"]


# the modes the channels watch, by name (not by position in MODES: a mode added there
# leaves these untouched)
_B, _C, _F = "amplified_bias", "confidence_miscalibration", "fairness_collapse"
_M, _O, _E = "adaptation_misalignment", "out_of_domain_degradation", "alignment_erosion"
assert {_B, _C, _F, _M, _O, _E} <= set(MODES)

REGISTRY: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            "aggregate_monitor",
            ("aggregate_metrics", "participant_counts"),
            (Channel("acc_drop", ()),),
            aggregate_statistic,
        ),
        Detector(
            "group_stratified_monitor",
            ("group_stratified_metrics",),
            (
                Channel("acc_gap_growth", (_F,)),
                Channel("worst_group_drop", (_F,)),
                Channel("bias_amplification", (_B,)),
            ),
            group_statistic,
        ),
        Detector(
            "server_probe_eval",
            ("global_probe_scores",),
            (Channel("alignment_drop", (_E,)), Channel("p0_acc_drop", (_O,))),
            probe_statistic,
        ),
        Detector(
            "federated_evaluation",
            ("federated_eval_reports", "participant_counts"),
            (
                Channel("alignment_drop", (_E,)),
                Channel("p0_acc_drop", (_O,)),
                Channel("mean_ece", (_C,)),
                Channel("mean_within_round_drop", (_M,)),
            ),
            fedeval_statistic,
        ),
        Detector(
            "update_direction_monitor",
            ("noised_update_sum",),
            (Channel("alignment_projection", (_E,)), Channel("spurious_projection", (_B,))),
            direction_statistic,
        ),
        Detector(
            "cusum_detector",
            ("aggregate_metrics", "global_probe_scores", "participant_counts"),
            (Channel("acc_cusum", ()), Channel("alignment_cusum", (_E,))),
            cusum_statistic,
        ),
        Detector(
            "bayesian_changepoint",
            ("aggregate_metrics", "global_probe_scores", "participant_counts"),
            (Channel("acc_changepoint", ()), Channel("alignment_changepoint", (_E,))),
            changepoint_statistic,
        ),
        Detector(
            "update_inspection",
            ("individual_updates",),
            (
                Channel("alignment_projection_max", (_E, _M)),
                Channel("spurious_projection_max", (_B,)),
                Channel("norm_max", (_O, _M)),
            ),
            inspection_statistic,
        ),
        Detector("central_audit", ("personal_model_audit",), (), audit_statistic),  # channels: refresh_audit
    )
}


def refresh_audit() -> None:
    """Give the central audit one channel per registered mode (it watches every mode;
    called again whenever a mode is registered)."""
    REGISTRY["central_audit"] = REGISTRY["central_audit"]._replace(channels=tuple(Channel(m, (m,)) for m in MODES))


refresh_audit()
assert tuple(REGISTRY) == tuple(DETECTORS)


def register_detector(detector: Detector) -> Detector:
    """Add ``detector`` to the registry: it is calibrated like the built-in ones (split
    conformal on the scenario's null runs) and enters every verdict of a scenario whose
    access it survives (``monitor.detectors`` may name it).

    Args:
        detector: a new identifier name, observables of :data:`~silentfail.sim.observe.OBSERVABLES`
            (its required access follows from them), channels watching registered modes,
            and a statistic ``(obs, pub, scenario) -> (T, len(channels))``, higher = more
            alarming, traceable by JAX.

    Returns:
        The detector.

    Raises:
        ValueError: naming what is wrong with the record.
    """
    check_new_id("detector", detector.name, REGISTRY)
    if bad := [o for o in detector.observables if o not in OBSERVABLES]:
        raise ValueError(f"detector {detector.name!r}: unknown observable(s) {bad}; known: {', '.join(OBSERVABLES)}")
    if not detector.channels:
        raise ValueError(f"detector {detector.name!r} has no channels")
    if bad := sorted({m for ch in detector.channels for m in ch.watches} - set(MODES)):
        raise ValueError(f"detector {detector.name!r} watches unknown mode(s) {bad}; modes: {', '.join(MODES)}")
    if not callable(detector.statistic):
        raise ValueError(f"detector {detector.name!r}: statistic must be callable")
    REGISTRY[detector.name] = detector
    DETECTOR_NAMES.append(detector.name)
    return detector


def watched(name: str) -> tuple[str, ...]:
    """The modes a detector watches (union over its channels), in mode order.

    Args:
        name: a registered detector.

    Returns:
        The modes its channels watch.
    """
    w = {m for ch in REGISTRY[name].channels for m in ch.watches}
    return tuple(m for m in MODES if m in w)


def deployed(sc: Scenario) -> tuple[str, ...]:
    """The detectors that run: those the monitor names (default all) whose required
    access the constraints leave.

    Args:
        sc: the scenario (its constraints and ``monitor.detectors``).

    Returns:
        The deployed detector names, in registry order.
    """
    acc = available_access(sc)
    names = sc.monitor.detectors if sc.monitor.detectors is not None else DETECTORS
    return tuple(d for d in DETECTORS if d in names and set(REGISTRY[d].requires) <= acc)


class Layout(NamedTuple):
    """The channels of a list of detectors, flattened (for arrays over channels)."""

    detectors: tuple[str, ...]
    channel: tuple[str, ...]  # "detector/channel"
    owner: np.ndarray  # (K,) index into detectors
    watches: np.ndarray  # (K, modes) bool


def layout(detectors: tuple[str, ...]) -> Layout:
    """The channels of these detectors, flattened, with their owners and watched modes.

    Args:
        detectors: detector names (e.g. :func:`deployed`).

    Returns:
        Layout(detectors, channel names "detector/channel", owner (K,), watches (K, modes)).
    """
    names, owner, watches = [], [], []
    for i, d in enumerate(detectors):
        for ch in REGISTRY[d].channels:
            names.append(f"{d}/{ch.name}")
            owner.append(i)
            watches.append([m in ch.watches for m in MODES])
    return Layout(
        tuple(detectors), tuple(names), np.asarray(owner, int), np.asarray(watches, bool).reshape(-1, len(MODES))
    )


def statistics(obs: dict, pub: Public, sc: Scenario, detectors: tuple[str, ...]) -> Array:
    """(T, K) per-round statistics of every channel of ``detectors``.

    Args:
        obs: the observables over rounds (``obs_*`` arrays, leading axis T).
        pub: what the server knows without clients (the FM's public scores).
        sc: the scenario.
        detectors: the detectors whose channels are computed, in this order.

    Returns:
        (T, K) the channels' statistics, detector by detector.
    """
    if not detectors:
        return jnp.zeros((obs["obs_count"].shape[0], 0))
    return jnp.concatenate([REGISTRY[d].statistic(obs, pub, sc) for d in detectors], axis=-1)


def first_over(stats: Array, thresholds: Array) -> Array:
    """First round with s_t > h for each channel (-1 if never; NaN never alarms).

    Args:
        stats: (T, K) per-round statistics.
        thresholds: (K,) thresholds h.

    Returns:
        (K,) int, the first round t with s_t > h, or -1.
    """
    over = stats > thresholds
    return jnp.where(over.any(0), jnp.argmax(over, axis=0), -1)


class Calibration(NamedTuple):
    """Thresholds per channel and the false-alarm rates per detector."""

    thresholds: np.ndarray  # (K,) +inf where uncalibrated
    nominal: float  # alpha
    achieved: np.ndarray  # (detectors,) false-alarm rate measured on held-out null runs
    achieved_se: np.ndarray  # (detectors,) its binomial standard error
    calibrated: np.ndarray  # (detectors,) bool: enough null runs for alpha
    n_validation: int  # held-out null runs the achieved rate is measured on
    null_failure_rate: np.ndarray | None = None  # (modes,) share of the null runs in which the mode fails
    null_runs: int = 0  # null runs simulated
    null_rejected: int = 0  # null runs left out of the calibration (monitor.null = "no_failure")


def _scores(x: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Channel scores of runs ``x`` (m, k) standardized by ``fit`` (n_f, k): the empirical
    CDF F_k(x) = #{fit < x} / n_f up to the fit maximum, continued linearly beyond it,
    1 + (x - max_k) / s_k with s_k = max_k - median_k; a run's score is its largest."""
    srt = np.sort(fit, axis=0)
    nf = fit.shape[0]
    below = np.stack([np.searchsorted(srt[:, k], x[:, k], side="left") for k in range(x.shape[1])], axis=1)
    mx, s = srt[-1], _tail_scale(srt)
    return np.where(x > mx, 1.0 + (x - mx) / s, below / nf).max(axis=1)


def _tail_scale(srt: np.ndarray) -> np.ndarray:
    mx, med = srt[-1], srt[srt.shape[0] // 2]
    return np.maximum(mx - med, 1e-9 * (1.0 + np.abs(mx)))


def _split_conformal(fit: np.ndarray, cal: np.ndarray, alpha: float) -> tuple[np.ndarray, bool]:
    """Split-conformal thresholds for the union of a detector's channels. The score
    function (:func:`_scores`) is fixed by ``fit``; q is the ceil((1 - alpha)(n + 1))-th
    smallest score of the n ``cal`` runs, so a new exchangeable null run has
    P(score > q) <= alpha; and score > q exactly when some channel exceeds
    h_k = F_k^{-1}(q) (the floor(q n_f) + 1-th smallest fit value for q < 1, else
    max_k + (q - 1) s_k). Ties (deterministic statistics) only make it conservative."""
    n = cal.shape[0]
    rank = int(np.ceil((1 - alpha) * (n + 1) - 1e-9))
    if rank > n or fit.shape[0] == 0:
        return np.full(fit.shape[1], np.inf), False
    q = np.sort(_scores(cal, fit))[rank - 1]
    srt = np.sort(fit, axis=0)
    if q < 1:
        return srt[int(np.floor(q * fit.shape[0]))], True
    return srt[-1] + (q - 1) * _tail_scale(srt), True


def calibrate(null_max: np.ndarray, owner: np.ndarray, n_detectors: int, alpha: float) -> Calibration:
    """Calibrate every detector on null runs' horizon maxima ``null_max`` (S, K): the
    first quarter of the runs fixes the score function, the second quarter sets the
    conformal quantile (:func:`_split_conformal`), and the second half (held out)
    measures the achieved false-alarm rate. A detector with too few runs for alpha is
    uncalibrated and never alarms (the scenario validator prevents it).

    Args:
        null_max: (S, K) each null run's horizon maximum of every channel (NaN: never released).
        owner: (K,) the detector index of each channel.
        n_detectors: the number of detectors.
        alpha: the false-alarm rate per detector over the horizon.

    Returns:
        Calibration: per-channel thresholds (+inf where uncalibrated), and per detector the
        achieved false-alarm rate on the held-out half with its binomial standard error.
    """
    x = np.asarray(null_max, np.float64)
    x = np.where(np.isnan(x), -np.inf, x)
    x = np.where(np.isfinite(x), x, np.sign(x) * 1e30)
    S = x.shape[0]
    fit, cal, val = x[: S // 4], x[S // 4 : S // 2], x[S // 2 :]
    thr = np.full(x.shape[1], np.inf)
    ok = np.zeros(n_detectors, bool)
    achieved = np.full(n_detectors, np.nan)
    for d in range(n_detectors):
        k = owner == d
        thr[k], ok[d] = _split_conformal(fit[:, k], cal[:, k], alpha)
        achieved[d] = np.mean(np.any(val[:, k] > thr[k][None], axis=1)) if len(val) else np.nan
    se = np.sqrt(np.maximum(achieved * (1 - achieved), 1e-12) / max(len(val), 1))
    return Calibration(thr, float(alpha), achieved, se, ok, len(val))
