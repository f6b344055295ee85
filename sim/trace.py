"""``Trace``: the xarray Dataset a run produces, with named dims (round, client, group,
mode, param) and attrs holding the full scenario and seed; saved as NetCDF and loaded
back unchanged. Also the per-mode failure verdicts (failed?, failure round T_f, worst
value) against the scenario's thresholds.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from .observe import OBS_COORDS, OBSERVABLES, available_access, available_observables
from .privacy import Accounting
from .scenario import MODES, Scenario, scenario_from_dict

Trace = xr.Dataset

_ROUND_VARS = (
    "acc_mean",
    "acc_std",
    "acc_q10",
    "worst_group_acc",
    "acc_parity_gap",
    "eo_gap",
    "ece_agg",
    "ece_agg_classwise",
    "ece_agg_top_label",
    "ece_max",
    "ece_q90",
    "global_alignment",
    "global_p0_acc",
    "global_spurious_weight",
    "deployed_alignment_q10",
    "bias_amp_mean",
    "misalign_q90",
    "ood_q90",
    "train_test_gap_mean",
)


def _next_under(over, xp):
    """(T, modes): for each round t the first round s >= t with the metric not over its
    threshold (T if it stays over to the horizon), by a reverse cumulative minimum."""
    T = over.shape[0]
    idx = xp.where(over, T, xp.arange(T)[:, None])
    if xp is np:
        return np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    import jax

    return jax.lax.cummin(idx, axis=0, reverse=True)


class Failures(NamedTuple):
    """Per mode: the failure round T_f (-1 = no failure) and the transient crossings."""

    round: Any  # (modes,) int
    transients: Any  # (modes,) int: crossings that ended before lasting ``persist`` rounds


def failure_rounds(metric: Any, threshold: Any, condition: Any = None, persist: Any = None, xp: Any = np) -> Failures:
    """The first round T_f at which each mode's metric goes over its threshold and stays
    over it for ``persist`` consecutive rounds, or to the horizon (-1 if never), and the
    number of crossings that did not (transients).

    A crossing is a maximal run of rounds over the threshold, [s, e); it is a failure when
    e - s >= persist or e = T (it lasts to the horizon), and T_f is the start of the first
    such run. With persist = 1 every crossing is a failure (the first-crossing rule).

    Args:
        metric: (T, modes) the round metrics.
        threshold: (modes,) the thresholds.
        condition: optional (T, modes) bool that must also hold (e.g. fairness collapse
            counts only while mean accuracy holds).
        persist: (modes,) ints (default 1).
        xp: ``numpy`` or ``jax.numpy`` (the sweep runs this inside ``jit``).

    Returns:
        Failures(round (modes,) T_f with -1 for never, transients (modes,) the number of
        crossings shorter than ``persist`` that ended before the horizon).
    """
    over = metric > threshold[None, :]
    if condition is not None:
        over = over & condition
    T = over.shape[0]
    persist = xp.ones(over.shape[1], dtype=xp.int32) if persist is None else xp.asarray(persist)
    run_end = _next_under(over, xp)
    t = xp.arange(T)[:, None]
    lasting = over & ((run_end - t >= persist[None, :]) | (run_end == T))
    start = over & xp.concatenate([xp.ones_like(over[:1]), ~over[:-1]], axis=0)
    t_f = xp.where(lasting.any(axis=0), lasting.argmax(axis=0), -1)
    return Failures(t_f, (start & ~lasting).sum(axis=0))


def mode_failures(mode_metric, acc_mean, fm_fairness, fm_acc_mean, thresholds, xp=np):
    """The six mode metrics relative to the FM and their failures (:func:`failure_rounds`
    with each mode's threshold and ``thresholds.persistence()``).

    Fairness collapse is the growth of its measure (``thresholds.fairness_metric``: the
    group accuracy gap, or the clients' accuracy spread) over the FM's value
    ``fm_fairness`` (``metrics.fm_fairness``), and counts only while mean accuracy stays
    within ``fairness_mean_tolerance`` of the FM's.
    Returns (metric (T, modes), Failures).

    Args:
        mode_metric: (T, modes) the round metrics.
        acc_mean: (T,) mean client accuracy.
        fm_fairness: the FM's fairness measure.
        fm_acc_mean: the FM's mean client accuracy.
        thresholds: the scenario's thresholds section.
        xp: ``numpy`` or ``jax.numpy``.

    Returns:
        (metric (T, modes) with fairness relative to the FM, Failures).
    """
    fair = xp.asarray([m == "fairness_collapse" for m in MODES])
    metric = mode_metric - fm_fairness * fair[None, :]
    thr = xp.stack([xp.asarray(thresholds.threshold(m), dtype=metric.dtype) for m in MODES])
    holds = acc_mean >= fm_acc_mean - thresholds.fairness_mean_tolerance
    cond = xp.where(fair[None, :], holds[:, None], True)
    return metric, failure_rounds(metric, thr, cond, xp.asarray(thresholds.persistence()), xp=xp)


#: The third dim of a per-client variable, where it is not "group".
_CLIENT_THIRD_DIM = {"ece_residual": "ece_bin"}

#: What the per-client variables are (the sources of the pooled round variables).
_CLIENT_DOCS = {
    "client_ece": "the mode's calibration error (thresholds.ece_kind) of the deployed model on the client's distribution",
    "client_ece_classwise": "classwise ECE: sum over bins of p of |P(y=+1, p in b) - E[p 1{p in b}]|",
    "client_ece_top_label": "top-label ECE (Guo et al. 2017): confidence max(p, 1-p) against the accuracy of argmax p",
    "client_group_mass": "P_c(a) (a group below metrics.GROUP_MASS_MIN is absent from the client)",
    "client_label_pos": "P_c(y=+1, a)",
    "client_ece_residual": "signed P(y=+1, p in b) - E[p 1{p in b}] per bin b of p (pooled with client_weight: ece_agg)",
    "client_ece_mid_low": "the same residual on the lower half [a, 1/2) of the middle bin (odd ece_bins; the top-label split)",
    "client_tpr": "P(yhat=+1 | y=+1, a) of the deployed model",
    "client_fpr": "P(yhat=+1 | y=-1, a) of the deployed model",
    "client_eo_gap": "equalized odds difference: max(range of TPR, range of FPR) over the groups present in the cell",
    "client_dp_gap": "demographic parity difference: range of P(yhat=+1 | a) over the groups present",
    "client_bias_amp": "directional bias amplification over the groups present (0 with fewer than two)",
    "client_weight": "the client's pooling weight n_c / mean(n) (pooled group accuracy, TPR / FPR and ECE weight by it)",
}


#: How many standard errors from its threshold a Monte Carlo mode metric must stay for
#: its verdict to be decided.
UNDECIDED_SE = 2.0


def undecided_modes(rounds: dict, se: np.ndarray, fm: dict, thresholds: Any, xp=np) -> np.ndarray:
    """The modes whose failure verdict a Monte Carlo metric leaves open: the verdict of the
    metric moved up by :data:`UNDECIDED_SE` standard errors in every round differs from
    that of the metric moved down by as much (it fails within 2 SE of its threshold, or
    its crossing lasts ``persist`` rounds at one end of the band and not at the other).

    Args:
        rounds: the scan's outputs (``mode_metric``, ``acc_mean``).
        se: (T, modes) the mode metrics' standard errors.
        fm: the FM's references (fairness, acc_mean).
        thresholds: the scenario's thresholds section.
        xp: ``numpy`` (float64, the trace) or ``jax.numpy`` (inside a batch program).

    Returns:
        (modes,) bool.
    """
    metric = rounds["mode_metric"]
    metric, acc = (
        (np.asarray(metric, dtype=np.float64), np.asarray(rounds["acc_mean"]))
        if xp is np
        else (
            metric,
            rounds["acc_mean"],
        )
    )
    lo, hi = (
        mode_failures(metric + sign * UNDECIDED_SE * se, acc, fm["fairness"], fm["acc_mean"], thresholds, xp=xp)[
            1
        ].round
        for sign in (-1.0, 1.0)
    )
    return (hi >= 0) != (lo >= 0)


def _param_names(sc: Scenario, D: int) -> list[str]:
    """The names of the D entries of the client model's parameter vector."""
    if D == sc.world.d + 1:
        return [f"x{i}" for i in range(sc.world.d)] + ["bias"]
    from .models import client_model

    model = client_model(sc)
    return model.param_names() if hasattr(model, "param_names") else [f"p{i}" for i in range(D)]


def build_trace(sc: Scenario, seed: int, rounds: dict, *, fm: dict, accounting: Accounting, weights) -> Trace:
    """Assemble the Dataset from the scan's per-round outputs (numpy-converted);
    ``weights`` are the clients' pooling weights (the first trace_clients are kept).

    Args:
        sc: the scenario.
        seed: the run's seed.
        rounds: the scan's per-round outputs as NumPy arrays.
        fm: the FM's reference values (alignment, P0 accuracy, mean accuracy, fairness, spurious weight).
        accounting: the run's privacy accounting.
        weights: (N,) the clients' pooling weights.

    Returns:
        The Trace.
    """
    T = sc.federation.rounds
    G = sc.world.groups
    th = sc.thresholds
    metric, (t_f, transients) = mode_failures(
        np.asarray(rounds["mode_metric"], dtype=np.float64),
        np.asarray(rounds["acc_mean"]),
        fm["fairness"],
        fm["acc_mean"],
        th,
    )
    thr = np.array([th.threshold(m) for m in MODES])
    client = rounds["client"]
    C = np.asarray(client["acc"]).shape[1]
    coords = {
        "round": np.arange(T),
        "mode": list(MODES),
        "group": np.arange(G),
        "client": np.arange(C),
        "param": _param_names(sc, np.asarray(rounds["theta_global"]).shape[1]),
    }
    data = {
        "mode_metric": (("round", "mode"), metric),
        "threshold": (("mode",), thr),
        "failed": (("mode",), t_f >= 0),
        "failure_round": (("mode",), t_f.astype(np.int64)),
        "transient_crossings": (("mode",), transients.astype(np.int64)),
        "persist": (("mode",), np.asarray(th.persistence(), np.int64)),
        "worst_value": (("mode",), metric.max(axis=0)),
        "group_acc": (("round", "group"), np.asarray(rounds["group_acc"])),
        "global_group_acc_p0": (("round", "group"), np.asarray(rounds["global_group_acc_p0"])),
        "update_sum": (("round", "param"), np.asarray(rounds["obs_update_sum"])),
        "participants": (("round",), np.asarray(rounds["n_reports"])),
        "capped_reports": (("round",), np.asarray(rounds["capped_reports"])),
        "theta_global": (("round", "param"), np.asarray(rounds["theta_global"])),
        "public_round": (("round",), np.asarray(rounds["public_round"])),
    }
    for v in _ROUND_VARS:
        data[v] = (("round",), np.asarray(rounds[v]))
    if "mode_metric_se" in rounds:  # a Monte Carlo client model: standard errors and undecided verdicts
        se = np.asarray(rounds["mode_metric_se"], dtype=np.float64)
        data["mode_metric_se"] = (("round", "mode"), se)
        data["undecided"] = (("mode",), undecided_modes(rounds, se, fm, th))
        for v, val in rounds["se"].items():
            data[f"{v}_se"] = (("round",), np.asarray(val))
    for ob in available_observables(sc):  # blocked observables are absent, not zero-filled
        spec = OBSERVABLES[ob]
        for key, dims in zip(spec.keys, spec.dims):
            data[key] = (("round",) + dims, np.asarray(rounds[key]))
            coords.update({d: list(OBS_COORDS[d]) for d in dims if d in OBS_COORDS})
    for k, v in client.items():
        arr = np.asarray(v)
        dims = ("round", "client", _CLIENT_THIRD_DIM.get(k, "group")) if arr.ndim == 3 else ("round", "client")
        data[f"client_{k}"] = (dims, arr)
    coords["ece_bin"] = np.arange(th.ece_bins)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        kind=KINDS["trace"],
        scenario=sc.to_json(),
        scenario_name=sc.name,
        seed=int(seed),
        **accounting.attrs(),
        fm_alignment=float(fm["alignment"]),
        fm_p0_acc=float(fm["p0_acc"]),
        fm_acc_mean=float(fm["acc_mean"]),
        fm_fairness=float(fm["fairness"]),
        fairness_metric=th.fairness_metric,
        fm_spurious_weight=float(fm["spurious_weight"]),
        silentfail_version=_version(),
        access=json.dumps(sorted(available_access(sc))),
        observables=json.dumps(list(available_observables(sc))),
    )
    ds["global_spurious_weight"].attrs["description"] = (
        "<theta_x, e_spu> of the global model; the spurious-weight ratio is this over attrs['fm_spurious_weight']"
    )
    ds["client_weight"] = (("client",), np.asarray(weights)[:C])
    for name, text in _CLIENT_DOCS.items():
        ds[name].attrs["description"] = text
    ds["participants"].attrs["description"] = (
        "ground truth: the number of reports in each round (the server's count is obs_count)"
    )
    ds["capped_reports"].attrs["description"] = (
        "ground truth: clients that joined but found no report slot (always 0 under DP, whose sample is never capped)"
    )
    ds["mode_metric"].attrs["description"] = (
        "per round: q90 directional bias amplification; q90 client ECE; growth over the FM's of the group "
        "accuracy gap (thresholds.fairness_metric = group_gap) or of mean - q10 client accuracy (client_spread); q90 within-round drop of P0 accuracy or alignment; q90 drop of accuracy on other clients "
        "or P0 vs the FM; drop of the global model's alignment below the FM's"
    )
    return ds


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("silentfail")
    except Exception:  # pragma: no cover
        return "unknown"


def scenario_of(trace: Trace) -> Scenario:
    """The scenario a trace was produced with.

    Args:
        trace: a trace (or sweep) Dataset.

    Returns:
        The Scenario in its ``scenario`` attribute.
    """
    return scenario_from_dict(json.loads(trace.attrs["scenario"]))


def save_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write NetCDF atomically (temporary file in the same folder, then rename): a reader
    sees the old file or the complete new one, never a partial write.

    Args:
        ds: the Dataset.
        path: the target file.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


save_trace = save_netcdf


#: What silentfail writes: a run's trace and a sweep (``attrs["kind"]``; traces of
#: earlier versions carry no kind but a scenario, a seed and the mode metrics).
KINDS = {"trace": "silentfail.trace", "sweep": "silentfail.sweep"}


def kind_of(ds: xr.Dataset) -> str | None:
    """'trace', 'sweep', another silentfail kind (e.g. 'literature'), or None (not silentfail's).

    Args:
        ds: a Dataset.

    Returns:
        The kind, or None.
    """
    kind = ds.attrs.get("kind")
    if isinstance(kind, str) and kind.startswith("silentfail."):
        return kind.split(".", 1)[1]
    if {"scenario", "seed"} <= set(ds.attrs) and "mode_metric" in ds:
        return "trace"
    return None


def read_dataset(path: str | Path, want: tuple[str, ...] = ("trace", "sweep")) -> tuple[str, xr.Dataset]:
    """Load a silentfail NetCDF file of one of the kinds ``want``; every other case is a
    ValueError (FileNotFoundError if missing) that names the file, what was expected and
    what was found: not a file, not NetCDF, a truncated or corrupted file, a NetCDF file
    from another tool, or the other silentfail kind.

    Args:
        path: the file.
        want: the kinds accepted.

    Returns:
        (kind, Dataset).
    """
    p = Path(path)
    expected = " or ".join(f"a silentfail {w}" for w in want)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist (expected {expected})")
    if not p.is_file():
        raise ValueError(f"{str(p)!r} is not a regular file (expected {expected}, a NetCDF file)")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head[:3] == b"CDF":
        raise ValueError(f"{str(p)!r} is a NetCDF-3 file, not one silentfail wrote (expected {expected}, NetCDF-4)")
    if head != b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"{str(p)!r} is not a NetCDF file (expected {expected})")
    try:
        ds = xr.load_dataset(p, engine="h5netcdf")
    except Exception as exc:  # noqa: BLE001 - h5py / h5netcdf raise many kinds
        raise ValueError(
            f"{str(p)!r} is a NetCDF/HDF5 file that cannot be read (truncated or corrupted?): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from None
    kind = kind_of(ds)
    if kind is None:
        raise ValueError(
            f"{str(p)!r} is a NetCDF file without silentfail's attributes (written by another tool?); "
            f"expected {expected}"
        )
    if kind not in want:
        raise ValueError(f"{str(p)!r} is a silentfail {kind}, but {expected} is expected here")
    if kind == "trace" and "failed" in ds:
        ds["failed"] = ds["failed"].astype(bool)
    return kind, ds


def load_trace(path: str | Path) -> Trace:
    """Load a NetCDF trace written by :func:`save_trace` (:func:`read_dataset`'s errors).

    Args:
        path: the file.

    Returns:
        The Trace.
    """
    return read_dataset(path, ("trace",))[1]


def summary(trace: Trace) -> list[dict]:
    """Per mode: failed?, failure round, worst value and threshold.

    Args:
        trace: a run's trace.

    Returns:
        One dict per mode: mode, failed, failure_round, worst_value, final_value,
        threshold; for a Monte Carlo client model also undecided and worst_se (the
        standard error of the worst value).
    """
    rows = [
        {
            "mode": m,
            "failed": bool(trace["failed"].sel(mode=m)),
            "failure_round": int(trace["failure_round"].sel(mode=m)),
            "worst_value": float(trace["worst_value"].sel(mode=m)),
            "final_value": float(trace["mode_metric"].sel(mode=m)[-1]),
            "threshold": float(trace["threshold"].sel(mode=m)),
        }
        for m in MODES
    ]
    if "undecided" in trace:  # a Monte Carlo client model: the verdict's uncertainty
        for r in rows:
            metric, se = trace["mode_metric"].sel(mode=r["mode"]), trace["mode_metric_se"].sel(mode=r["mode"])
            r["undecided"] = bool(trace["undecided"].sel(mode=r["mode"]))
            r["worst_se"] = float(se[int(metric.argmax())])
    return rows
