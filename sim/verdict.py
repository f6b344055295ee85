"""Verdicts: for each mode, did it fail (T_f), which detector caught it and when (T_d),
and did it stay silent.

For mode m of one run, T_f is the first round of a *persistent* crossing of its
threshold (``thresholds.persist`` rounds, or to the horizon; see
:func:`~silentfail.sim.trace.failure_rounds`). A detector's alarm for m is its first
alarm on a channel that watches m (``monitor.attribution = "watch"``) or on any channel
(``"any"``: any alarm prompts an investigation). An alarm *detects* the failure only in
the window [T_f - lead, T_f + grace] (``monitor.lead``, default 0, and ``monitor.grace``);
an alarm before T_f - lead is an *early warning*: the detector reacted to the shift,
not to the failure, and it is reported on its own, never counted as a detection. T_d is
the earliest detecting alarm over the deployed detectors; the run is *silent* for m when
m failed and no deployed detector's alarm falls in the window.

Thresholds come from :func:`calibration`: null runs of the same scenario with the shift
switched off (``shifts.strength = 0``: the same constraints, personalization and
federation), seeds disjoint from those of the runs judged. A mode can fail in those
null runs (the constraints or personalization cause it, with no shift): its null failure
rate is reported with every verdict, the mode is flagged ``caused_without_shift`` when
that rate exceeds ``monitor.alpha``, and a detector calibrated on such runs cannot
separate the failure from the null. Who causes it is tested, not guessed
(:func:`attribute_null`): the null runs again without DP noise and clipping, and
without the byzantine clients; the cause is what, lifted, brings the mode's null
failure rate to at most alpha ("the constraints", "byzantine clients"), else
"personalization" (local steps and aggregation on unshifted data). ``monitor.null = "no_failure"`` calibrates on the
null runs in which no mode fails instead (the number rejected is reported).
"""

from __future__ import annotations

import functools
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .batch import NULL_STRENGTH, run_batch
from .config import Config, Static
from .detectors import Calibration, Layout, Public, deployed, first_over, layout, statistics
from .detectors import calibrate as calibrate_thresholds
from .registry import DETECTORS
from .scenario import MODES, Scenario, scenario_from_dict
from .seeds import NULL_SEED0
from .trace import Trace, scenario_of


def earliest(rounds: np.ndarray, axis: int = -1) -> np.ndarray:
    """The earliest round along ``axis``, where -1 means never (and stays -1 if all are).

    Args:
        rounds: int rounds, -1 for never.
        axis: the axis reduced.

    Returns:
        The minimum over the non-negative entries, -1 where there are none.
    """
    never = np.iinfo(np.int64).max
    first = np.where(rounds < 0, never, rounds).astype(np.int64).min(axis=axis, initial=never)
    return np.where(first == never, -1, first)


def detection_rounds(alarm: np.ndarray, lay: Layout, attribution: str = "watch") -> np.ndarray:
    """(..., K) channel alarm rounds -> (..., modes, detectors): each detector's first
    alarm that counts for each mode (-1 = none).

    Args:
        alarm: (..., K) each channel's first alarm round.
        lay: the channel layout (owners, watched modes).
        attribution: ``watch`` (only channels watching the mode count) or ``any``.

    Returns:
        (..., modes, detectors) int.
    """
    out = np.empty(alarm.shape[:-1] + (len(MODES), len(lay.detectors)), np.int64)
    for d in range(len(lay.detectors)):
        for m in range(len(MODES)):
            counts = (lay.owner == d) & (True if attribution == "any" else lay.watches[:, m])
            out[..., m, d] = earliest(alarm[..., counts])
    return out


def detector_alarms(alarm: np.ndarray, lay: Layout) -> np.ndarray:
    """(..., K) -> (..., detectors): each detector's first alarm on any channel (-1 = none).

    Args:
        alarm: (..., K) each channel's first alarm round.
        lay: the channel layout.

    Returns:
        (..., detectors) int.
    """
    return detection_rounds(alarm, lay, "any")[..., 0, :]


class Judgement(NamedTuple):
    """Per run and mode: the detecting alarm round, detected, silent, the delay and whether an early warning came."""

    detection_round: np.ndarray  # (..., modes) earliest alarm in the detection window, -1 = none
    detected: np.ndarray  # (..., modes) bool
    silent: np.ndarray  # (..., modes) bool
    delay: np.ndarray  # (..., modes) float, T_d - T_f where detected, else NaN
    early_warning: np.ndarray  # (..., modes) bool: failed, and a counting alarm came before T_f - lead


def judge(failure_round: np.ndarray, det_rounds: np.ndarray, grace: int, lead: int = 0) -> Judgement:
    """Judge failures against the detectors' first counting alarms ``det_rounds``
    (..., modes, detectors): detected = failed and some alarm in [T_f - lead, T_f + grace];
    silent = failed and not detected; early warning = failed and some alarm before
    T_f - lead (reported apart: it does not detect the failure).

    Args:
        failure_round: (..., modes) T_f, -1 where the mode does not fail.
        det_rounds: (..., modes, detectors) each detector's first alarm counting for the
            mode (-1: none).
        grace: rounds after T_f within which an alarm still detects.
        lead: rounds before T_f from which an alarm detects.

    Returns:
        Judgement of (..., modes) arrays: detection round T_d (first alarm in the
        window, -1), detected, silent, delay T_d - T_f and early warning.
    """
    t_f = failure_round[..., None]
    failed = failure_round >= 0
    alarmed = (det_rounds >= 0) & (t_f >= 0)
    in_window = alarmed & (det_rounds >= t_f - lead) & (det_rounds <= t_f + grace)
    early = alarmed & (det_rounds < t_f - lead)
    t_d = earliest(np.where(in_window, det_rounds, -1))
    detected = failed & in_window.any(axis=-1)
    delay = np.where(detected, (t_d - failure_round).astype(float), np.nan)
    return Judgement(t_d, detected, failed & ~detected, delay, failed & early.any(axis=-1))


def calibrate_on_null(stat_max: np.ndarray, failure_round: np.ndarray, lay: Layout, sc: Scenario) -> Calibration:
    """Thresholds from null runs' horizon maxima ``stat_max`` (S, K) and the null runs'
    failure rounds (S, modes): all of them (``monitor.null = "no_shift"``) or those in
    which no mode fails (``"no_failure"``), with the null failure rate of each mode.

    Args:
        stat_max: (S, K) the null runs' horizon maxima of every channel.
        failure_round: (S, modes) the null runs' failure rounds.
        lay: the channel layout.
        sc: the scenario (``monitor.null``, ``monitor.alpha``).

    Returns:
        Calibration with the null failure rates and the number of null runs used and rejected.
    """
    failed = np.asarray(failure_round) >= 0
    keep = ~failed.any(axis=1) if sc.monitor.null == "no_failure" else np.ones(len(failed), bool)
    cal = calibrate_thresholds(np.asarray(stat_max)[keep], lay.owner, len(lay.detectors), sc.monitor.alpha)
    return cal._replace(null_failure_rate=failed.mean(axis=0), null_runs=len(failed), null_rejected=int((~keep).sum()))


def caused_without_shift(cal: Calibration, alpha: float) -> np.ndarray:
    """(modes,) bool: the mode fails in more than ``alpha`` of the null runs.

    Args:
        cal: the calibration (its null failure rates).
        alpha: the detectors' false-alarm rate.

    Returns:
        (modes,) bool.
    """
    return np.asarray(cal.null_failure_rate) > alpha


#: The causes :func:`attribute_null` can lift from the null runs, each with the
#: scenario fields that lift it: the privacy mechanism (DP noise and update clipping;
#: what the server may see is unchanged) and the byzantine clients (a threat, not a
#: shift). A failure no lifting clears is the personalization's own (local steps and
#: aggregation on unshifted data).
LIFTABLE = {
    "the constraints": {"federation.dp": "none", "federation.noise_multiplier": 0.0, "federation.clip": None},
    "byzantine clients": {"federation.byzantine_fraction": 0.0},
}
PERSONALIZATION = "personalization"


def liftable_causes(sc: Scenario) -> tuple[str, ...]:
    """The :data:`LIFTABLE` causes present in ``sc``.

    Args:
        sc: the scenario.

    Returns:
        The cause names (keys of :data:`LIFTABLE`).
    """
    f = sc.federation
    present = {"the constraints": f.dp != "none" or f.clip is not None, "byzantine clients": f.byzantine_fraction > 0}
    return tuple(c for c in LIFTABLE if present[c])


def lifted(sc: Scenario, causes: tuple[str, ...]) -> Scenario:
    """``sc`` without these :data:`LIFTABLE` causes.

    Args:
        sc: the scenario.
        causes: names of :data:`LIFTABLE`.

    Returns:
        The scenario with those causes' fields set to their lifted values.
    """
    return sc.replace(**{k: v for c in causes for k, v in LIFTABLE[c].items()})


def null_cause(caused: np.ndarray, single: dict[str, np.ndarray], all_lifted: np.ndarray, alpha: float) -> np.ndarray:
    """(modes,) str naming who causes a mode's failures in the null runs: the lifted
    causes whose removal alone brings its null failure rate to at most ``alpha``
    (``single``: cause -> rates without it), else all of them "together" if removing them
    all does (``all_lifted``), else "personalization"; "" for a mode not caused without shift.

    Args:
        caused: (modes,) bool, caused without shift.
        single: cause -> (modes,) null failure rates with that cause lifted.
        all_lifted: (modes,) the rates with every cause lifted.
        alpha: the false-alarm rate (the bar a lifted rate must reach).

    Returns:
        (modes,) str.
    """
    out = []
    for m, c in enumerate(np.asarray(caused)):
        alone = [name for name, rate in single.items() if rate[m] <= alpha]
        if not c:
            out.append("")
        elif alone:
            out.append(" / ".join(alone))
        elif len(single) > 1 and all_lifted[m] <= alpha:
            out.append(" and ".join(single) + " together")
        else:
            out.append(PERSONALIZATION)
    return np.asarray(out, dtype=f"<U{max(map(len, out + ['']))}")


def null_failure_rate(sc: Scenario, paths: tuple[str, ...], values: np.ndarray) -> np.ndarray:
    """(modes,) the failure rate of each mode over ``monitor.calibration_seeds`` null runs
    of ``sc`` (the traced ``paths`` at ``values``, shift strength at the null's).

    Args:
        sc: the scenario.
        paths: the traced fields (the null's shift strength among them).
        values: their values.

    Returns:
        (modes,) failure rates.
    """
    S, dets = sc.monitor.calibration_seeds, deployed(sc)
    out = run_batch(
        sc,
        paths,
        dets,
        np.tile(np.asarray(values, np.float32), (S, 1)),
        NULL_SEED0 + np.arange(S),
        np.full((S, len(layout(dets).channel)), np.inf),
    )
    return (np.asarray(out.failure_round) >= 0).mean(axis=0)


def attribute_null(
    sc: Scenario, cal: Calibration, paths: tuple[str, ...] = ("shifts.strength",), values: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Who causes the failures of the null runs, tested by lifting each cause
    (:func:`liftable_causes`) and running the null again: (the null failure rate with
    every cause lifted, :func:`null_cause`) per mode. Extra runs happen only where a
    mode is caused without shift and there is something to lift.

    Args:
        sc: the scenario (its null: ``shifts.strength`` = 0 unless ``paths`` say otherwise).
        cal: its calibration (the null failure rates decide which modes are tested).
        paths: the fields that make the null (set to ``values``).
        values: their null values (default: 0 for the shift strength).

    Returns:
        (modes,) the null failure rate with every present cause lifted (the unlifted
        rate when nothing is tested), and (modes,) the cause (:func:`null_cause`): the
        lifted causes that clear the mode, or "personalization" when none does ("" where
        the mode is not caused without shift).
    """
    caused = caused_without_shift(cal, sc.monitor.alpha)
    rate = np.asarray(cal.null_failure_rate, float)
    causes = liftable_causes(sc)
    if not (caused.any() and causes):
        return rate, null_cause(caused, {}, rate, sc.monitor.alpha)
    vals = np.full(len(paths), NULL_STRENGTH) if values is None else values
    rate = null_failure_rate(lifted(sc, causes), paths, vals)
    single = (
        {causes[0]: rate} if len(causes) == 1 else {c: null_failure_rate(lifted(sc, (c,)), paths, vals) for c in causes}
    )
    return rate, null_cause(caused, single, rate, sc.monitor.alpha)


@functools.lru_cache(maxsize=32)
def _calibration(static: Static) -> tuple[Layout, Calibration]:
    sc = static.scenario
    dets = deployed(sc)
    lay = layout(dets)
    S = sc.monitor.calibration_seeds
    out = run_batch(
        sc,
        ("shifts.strength",),
        dets,
        np.full((S, 1), NULL_STRENGTH),
        NULL_SEED0 + np.arange(S),
        np.full((S, len(lay.channel)), np.inf),
    )
    return lay, calibrate_on_null(out.stat_max, out.failure_round, lay, sc)


@functools.lru_cache(maxsize=32)
def _null_attribution(static: Static) -> tuple[np.ndarray, np.ndarray]:
    return attribute_null(static.scenario, _calibration(static)[1])


def calibration(sc: Scenario) -> tuple[Layout, Calibration]:
    """The deployed detectors' channel layout and their thresholds, calibrated on
    ``monitor.calibration_seeds`` null runs to false-alarm rate ``monitor.alpha``
    (:func:`calibrate_on_null`; cached per scenario).

    Args:
        sc: the scenario.

    Returns:
        (Layout of the deployed detectors' channels, Calibration with the thresholds h_k,
        the achieved false-alarm rates and the null runs' failure rates).
    """
    return _calibration(Static(sc))


@functools.partial(jax.jit, static_argnames=("detectors",))
def _compiled_statistics(cfg: Config, obs: dict, pub: Public, *, detectors: tuple[str, ...]) -> jax.Array:
    """The channel statistics of one scenario as one compiled program (run eagerly,
    every operation of every detector would compile on its own)."""
    return statistics(obs, pub, cfg.scenario, detectors)


def trace_statistics(trace: Trace) -> np.ndarray:
    """(T, K) detector-channel statistics recomputed from the observables in a trace.

    Args:
        trace: a run's trace (its ``obs_*`` variables).

    Returns:
        (T, K) float32, the deployed detectors' channels in layout order.
    """
    sc = scenario_of(trace)
    dets = deployed(sc)
    obs = {k: jnp.asarray(trace[k].values) for k in trace.data_vars if k.startswith("obs_")}
    pub = Public(jnp.asarray(trace.attrs["fm_alignment"]), jnp.asarray(trace.attrs["fm_p0_acc"]))
    return np.asarray(_compiled_statistics(Config(sc), obs, pub, detectors=tuple(dets)))


class Calibrated(NamedTuple):
    """A scenario's detector calibration as a value: the scenario (JSON) it is for, the
    deployed detectors' channel layout, the thresholds and false-alarm rates
    (:class:`~silentfail.sim.detectors.Calibration`, with the null runs' failure rates),
    and who causes the null failures (:func:`attribute_null`: the rate with every cause
    lifted, and the cause per mode). Inspect it, and pass it to :func:`verdict` to judge
    many runs of the scenario without recalibrating."""

    scenario: str
    layout: Layout
    calibration: Calibration
    null_failure_rate_lifted: np.ndarray
    null_cause: np.ndarray


def calibrate(sc: Scenario) -> Calibrated:
    """Calibrate the deployed detectors of ``sc`` on ``monitor.calibration_seeds`` null
    runs (:func:`calibration`) and attribute the null failures (:func:`attribute_null`);
    cached per scenario.

    Args:
        sc: the scenario whose detectors are calibrated (its null is ``monitor.null``).

    Returns:
        The :class:`Calibrated` value :func:`verdict` takes: the layout, per-channel
        thresholds, achieved false-alarm rates with their standard errors, and the null
        runs' failure rates and causes.
    """
    lay, cal = calibration(sc)
    static = Static(sc)
    lifted, cause = _null_attribution(static)
    return Calibrated(static.key, lay, cal, lifted, cause)


def verdict(trace: Trace, calibrated: Calibrated | None = None) -> xr.Dataset:
    """The Verdict of one run (mode x detector): T_f, each deployed detector's detection
    round, T_d, detected, silent and delay, with the calibration it used in attrs.

    Args:
        trace: a run (:func:`silentfail.sim.run.run`).
        calibrated: the scenario's calibration (:func:`calibrate`); by default it is
            computed (and cached) here. One made for another scenario is refused.

    Returns:
        The verdict Dataset over (mode, detector, channel).
    """
    if "transient_crossings" not in trace:
        raise ValueError(
            "this trace was written by an older silentfail, whose failure rounds are first crossings (no persistence, "
            "thresholds.persist); simulate it again to judge it under the current rules"
        )
    sc = scenario_of(trace)
    if (modes := [str(m) for m in trace["mode"].values]) != list(MODES):
        raise ValueError(
            f"this trace's modes {modes} are not the registered ones {list(MODES)}: "
            "load the plugins it was simulated with (--plugin), and only those"
        )
    if calibrated is None:
        calibrated = calibrate(sc)
    elif calibrated.scenario != sc.to_json():
        raise ValueError(
            f"the calibration is for another scenario ({scenario_from_dict(json.loads(calibrated.scenario)).name!r}, "
            f"not this trace's {sc.name!r}); calibrate(scenario_of(trace)) makes the right one"
        )
    lay, cal = calibrated.layout, calibrated.calibration
    if lay.watches.shape[1] != len(MODES) or any(d not in DETECTORS for d in lay.detectors):
        raise ValueError(
            "the calibration was made under other registered modes or detectors (a plugin loaded or unloaded since): "
            "calibrate again"
        )
    attr = (calibrated.null_failure_rate_lifted, calibrated.null_cause)
    stats = trace_statistics(trace)
    alarm = np.asarray(first_over(jnp.asarray(stats), jnp.asarray(cal.thresholds, jnp.float32)))
    det = detection_rounds(alarm, lay, sc.monitor.attribution)
    t_f = trace["failure_round"].values
    j = judge(t_f, det, sc.monitor.grace, sc.monitor.lead)
    watches = np.zeros((len(MODES), len(lay.detectors)), bool)
    for k in range(len(lay.channel)):
        watches[:, lay.owner[k]] |= lay.watches[k]
    ds = xr.Dataset(
        {
            "failure_round": (("mode",), t_f),
            "detection_round": (("mode", "detector"), det),
            "watches": (("mode", "detector"), watches),
            "alarm_round": (("detector",), detector_alarms(alarm, lay)),
            "first_detection": (("mode",), j.detection_round),
            "detected": (("mode",), j.detected),
            "silent": (("mode",), j.silent),
            "delay": (("mode",), j.delay),
            "early_warning": (("mode",), j.early_warning),
            "transient_crossings": (("mode",), trace["transient_crossings"].values),
            "null_failure_rate": (("mode",), cal.null_failure_rate),
            "caused_without_shift": (("mode",), caused_without_shift(cal, sc.monitor.alpha)),
            "null_failure_rate_lifted": (("mode",), attr[0]),
            "null_cause": (("mode",), attr[1]),
            "false_alarm_rate": (("detector",), cal.achieved),
            "false_alarm_se": (("detector",), cal.achieved_se),
            "channel_threshold": (("channel",), cal.thresholds),
            "channel_alarm_round": (("channel",), alarm),
        },
        coords={"mode": list(MODES), "detector": list(lay.detectors), "channel": list(lay.channel)},
    )
    if "undecided" in trace:  # a Monte Carlo client model: the failure verdict flips within 2 SE
        ds["undecided"] = ("mode", trace["undecided"].values.astype(bool))
        ds["undecided"].attrs["description"] = (
            "the failure verdict differs between the mode metric moved up and down by 2 standard errors "
            "(a Monte Carlo client model, sim/mlp.py): failed, detected and silent are point estimates"
        )
    ds.attrs.update(
        alpha=cal.nominal,
        grace=sc.monitor.grace,
        lead=sc.monitor.lead,
        attribution=sc.monitor.attribution,
        null=sc.monitor.null,
        null_runs=cal.null_runs,
        null_rejected=cal.null_rejected,
        calibration_seeds=sc.monitor.calibration_seeds,
        seed=trace.attrs["seed"],
        scenario=trace.attrs["scenario"],
    )
    return ds


def summarize(failure_round: np.ndarray, j: Judgement, axis: int) -> dict[str, np.ndarray]:
    """Across seeds (``axis``): P(fail), P(early warning), P(detected | fail),
    P(silent | fail), P(silent), and the median and 10%/90% quantiles of the detection
    delay over detected failures (NaN where nothing failed).

    Args:
        failure_round: (..., modes) T_f per run (-1: no failure).
        j: the runs' Judgement.
        axis: the seed axis.

    Returns:
        ``{p_fail, p_early_warning, p_detected_given_fail, p_silent_given_fail, p_silent,
        delay_q10, delay_median, delay_q90}``, each reduced over ``axis``.
    """
    import warnings

    failed = failure_round >= 0
    n_fail = failed.sum(axis)
    given_fail = lambda x: np.where(n_fail > 0, x.sum(axis) / np.maximum(n_fail, 1), np.nan)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(j.delay, [0.1, 0.5, 0.9], axis=axis) if j.delay.size else np.full((3,), np.nan)
    return dict(
        p_fail=failed.mean(axis),
        p_early_warning=j.early_warning.mean(axis),
        p_detected_given_fail=given_fail(j.detected),
        p_silent_given_fail=given_fail(j.silent),
        p_silent=j.silent.mean(axis),
        delay_q10=q[0],
        delay_median=q[1],
        delay_q90=q[2],
    )
