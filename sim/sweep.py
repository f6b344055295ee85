"""Sweeps: the verdicts of a scenario over a grid of parameters and seeds, as an xarray
Dataset over the grid (paper/main.tex, The six modes; the Phase of the data flow).

``sweep(scenario, axes={"personalization.lam": [...], "shifts.strength": [...]}, seeds=S)``

* Every grid point is validated as a scenario of its own (a bad value names its field).
* Float axes the engine uses as numbers are *traced*: one compiled program serves all
  their values (vmapped in fixed-width lanes, ``jax.lax.map(batch_size=LANES)``);
  other axes (integers, names, switches) are *static*: one program per value.
* Each detector is calibrated per grid point on ``monitor.calibration_seeds`` null runs
  of that point (shift strength 0, everything else equal; null points that differ only
  in shift axes are shared), to false-alarm rate ``monitor.alpha``.
* Runs go in chunks of ``chunk`` runs; with a ``store`` folder each chunk is written
  atomically as NetCDF (``chunks/*.nc``) next to a ``manifest.json``, and ``resume=True``
  reuses every finished chunk. Chunks are multiples of the device call (``batch.CALL``
  runs, one compiled shape), so run i sits at the same position of a call whatever the
  chunk size and the result is bitwise independent of it.

The Dataset has dims (*axes, seed, mode, detector, channel): per run the failure round,
transient crossings, final and worst metric, detection rounds, early warnings and
silence (sim/verdict.py); per point P(fail), P(early warning), P(detected | fail),
P(silent | fail), P(silent), P(transient only), delay quantiles, per-detector alarm
rates, the thresholds and achieved false-alarm rates of the calibration, and the null
runs' failure rate of each mode (``caused_without_shift`` where it exceeds alpha), with
who causes it (``null_cause``: "the constraints" where the null runs without DP noise
and clipping do not fail, "byzantine clients" where those without the attack do not,
else "personalization"; sim/verdict.py, :func:`attribute_null`); and per point the
theory's predicted regime of every mode (``theory_failed``, ``theory_silent``,
``theory_p_fail``, ``theory_p_silent``, ``theory_failure_round``, ``theory_stat_max``
(the noise-free channel maxima, mean over the draws): population-limit runs
of ``theory.THEORY_DRAWS`` population draws at the point's thresholds, sim/theory.py).
For a Monte Carlo client model (``model.kind = "mlp"``, ``"lora"``) also per run
``undecided`` (the failure verdict moves when the metric moves by 2 SE,
``trace.undecided_modes``) and ``worst_se`` (the SE of the worst round's metric), and per
point ``p_undecided``, the share of valid runs whose verdict is undecided.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import distributed
from .batch import CALL, NULL_STRENGTH, Outcome, run_batch, traceable
from .detectors import Calibration, deployed, layout
from .models import client_model
from .params import axis_value, numeric_field
from .personalize import stable
from .scenario import MODES, Scenario, ScenarioError
from .seeds import check_seed_count
from .theory import THEORY_DRAWS, THEORY_SEED0, judge_expected
from .trace import _version, save_netcdf
from .verdict import (
    NULL_SEED0,
    attribute_null,
    calibrate_on_null,
    caused_without_shift,
    detection_rounds,
    detector_alarms,
    judge,
    summarize,
)

Progress = Callable[[int, int], None]
STRENGTH = "shifts.strength"


class Plan:
    """The runs of a sweep: grid points, their static / traced split and null points."""

    def __init__(self, sc: Scenario, axes: Mapping[str, Sequence[Any]], seeds: int, max_runs: int | None = None):
        self.sc, self.seeds = sc, check_seed_count(seeds)
        check_size(sc, axes, self.seeds, max_runs)
        self.axes = {}
        for path, values in axes.items():
            numeric_field(sc, path)  # unknown path -> ScenarioError
            vals = [axis_value(sc, path, v) for v in values]
            if not vals:
                raise ScenarioError(f"sweep axis {path!r} has no values")
            if len(set(map(repr, vals))) != len(vals):
                raise ScenarioError(f"sweep axis {path!r} repeats a value")
            self.axes[path] = vals
        self.points = [dict(zip(self.axes, combo)) for combo in itertools.product(*self.axes.values())]
        self.scenarios = [sc.replace(**p) for p in self.points]  # validates every point
        self.static = [p for p in self.axes if not traceable(sc, p)]
        self.traced = [p for p in self.axes if p not in self.static]
        self.paths = tuple(self.traced + ([STRENGTH] if STRENGTH not in self.traced else []))
        dets = {deployed(s) for s in self.scenarios}
        if len(dets) > 1:
            raise ScenarioError("the sweep's axes change which detectors are deployed; sweep those settings separately")
        self.detectors = dets.pop()
        self.layout = layout(self.detectors)
        # static combos: one compiled program each
        key = lambda p: tuple(repr(p[a]) for a in self.static)  # noqa: E731
        self.combo_keys = list(dict.fromkeys(key(p) for p in self.points))
        self.combo_of = [self.combo_keys.index(key(p)) for p in self.points]
        shift_axes = [a for a in self.axes if a.startswith("shifts.")]
        nkey = lambda p: tuple(repr(p[a]) for a in self.axes if a not in shift_axes)  # noqa: E731
        self.null_keys = list(dict.fromkeys(nkey(p) for p in self.points))
        self.null_of = [self.null_keys.index(nkey(p)) for p in self.points]
        self.null_rep = [self.null_of.index(i) for i in range(len(self.null_keys))]  # a point per null key

    def combo_scenario(self, c: int) -> Scenario:
        """The scenario of static combination ``c`` (the values of the static axes).

        Args:
            c: the combination's index.

        Returns:
            The scenario.
        """
        first = self.points[self.combo_of.index(c)]
        return self.sc.replace(**{a: first[a] for a in self.static})

    def values(self, point: int, null: bool) -> list[float]:
        """The traced fields' values at grid point ``point`` (the shift off for a null run).

        Args:
            point: the grid point's index.
            null: the null run of that point.

        Returns:
            One value per traced field.
        """
        p = self.points[point]
        return [
            NULL_STRENGTH if (null and path == STRENGTH) else float(p.get(path, numeric_field(self.sc, path)))
            for path in self.paths
        ]

    def spec(self, chunk: int) -> dict:
        """What identifies the sweep in its store: scenario, axes, seeds, chunk size and version.

        Args:
            chunk: runs per stored chunk.

        Returns:
            The JSON-able spec (a resume refuses a store with another).
        """
        return dict(
            scenario=json.loads(self.sc.to_json()),
            axes={k: [_jsonable(v) for v in vs] for k, vs in self.axes.items()},
            seeds=self.seeds,
            chunk=chunk,
            version=_version(),
            outcome=list(Outcome._fields),  # a store of older outcomes cannot be resumed into this one
        )


#: The most runs a sweep makes unless its caller lifts the limit (``max_runs=None``,
#: ``--allow-large``): about two hours of the default phase diagram's runs on a 2-core CPU.
MAX_RUNS = 200_000
#: Client-rounds per second of a sweep on the 2-core CPU (benchmarks/results/bench.json),
#: for the time estimate of a refused request.
CLIENT_ROUNDS_PER_S = 4e5


def check_size(sc: Scenario, axes: Mapping[str, Sequence[Any]], seeds: int, max_runs: int | None) -> int:
    """The number of runs a sweep asks for (its grid's seeds and the null runs that
    calibrate it), checked against ``max_runs`` before anything is built or computed.

    Args:
        sc: the scenario.
        axes: ``{field: values}``.
        seeds: seeds per grid point.
        max_runs: the largest allowed (None: no limit).

    Returns:
        The number of runs.

    Raises:
        ScenarioError: axes that are not sequences, or more than ``max_runs`` runs.
    """
    sizes = {path: len(values) if hasattr(values, "__len__") else None for path, values in axes.items()}
    if None in sizes.values():
        raise ScenarioError(f"sweep axes must be sequences of values, got {axes!r}")
    points = int(np.prod(list(sizes.values()), dtype=object)) if sizes else 1
    null_points = (
        int(np.prod([n for a, n in sizes.items() if not a.startswith("shifts.")], dtype=object)) if sizes else 1
    )
    runs = points * seeds + null_points * sc.monitor.calibration_seeds
    if max_runs is not None and runs > max_runs:
        hours = runs * sc.population.num_clients * sc.federation.rounds / CLIENT_ROUNDS_PER_S / 3600
        raise ScenarioError(
            f"the sweep asks for {runs:,} runs ({points:,} grid points x {seeds} seeds + {null_points:,} x "
            f"{sc.monitor.calibration_seeds} null runs), above the limit of {max_runs:,} (about {hours:,.1f} hours on a "
            "2-core CPU); shrink the grid or the seeds, or lift the limit (max_runs=None, --allow-large)"
        )
    return runs


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Store:
    """A folder of atomically written chunk files and a manifest: the sweep's spec, its
    hash, and the SHA-256 of every finished chunk, verified when a chunk is reused (a
    chunk changed, swapped in from another sweep or corrupted is refused by name).

    ``readonly``: a multi-process sweep's processes other than 0 open the store that
    process 0 opened (as a resume) and reuse its finished chunks, but write nothing."""

    _META = ("spec_sha256", "chunks")

    def __init__(self, root: str | Path | None, spec: dict, resume: bool, readonly: bool = False):
        self.root = Path(root) if root is not None else None
        self.sums: dict[str, str] | None = {}
        self.readonly = readonly
        if self.root is None:
            return
        self.spec = spec
        manifest = self.root / "manifest.json"
        if readonly and not manifest.exists():
            raise ScenarioError(f"sweep store {str(self.root)!r} has no manifest: process 0 did not open it")
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ScenarioError(
                    f"cannot resume {str(self.root)!r}: {str(manifest)!r} is not a silentfail manifest "
                    "(corrupted?); delete the store folder to start over"
                ) from None
            if not resume and not readonly:
                raise FileExistsError(
                    f"sweep store {str(self.root)!r} exists; pass resume=True (--resume) or another folder"
                )
            old_spec = {k: v for k, v in old.items() if k not in self._META}
            if old_spec != spec:
                diff = sorted(k for k in spec if old_spec.get(k) != spec[k])
                raise ScenarioError(f"cannot resume {str(self.root)!r}: the stored sweep differs in {', '.join(diff)}")
            self.sums = old.get("chunks")  # None: a store written before checksums (nothing to verify)
        else:
            (self.root / "chunks").mkdir(parents=True, exist_ok=True)
            self._write_manifest()

    def _write_manifest(self) -> None:
        assert self.root is not None
        body = dict(
            self.spec,
            spec_sha256=hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest(),
            chunks=dict(sorted((self.sums or {}).items())),
        )
        manifest = self.root / "manifest.json"
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
        tmp.replace(manifest)

    def path(self, name: str) -> Path:
        """The file of chunk ``name``.

        Args:
            name: the chunk's name.

        Returns:
            Its path in the store.
        """
        assert self.root is not None
        return self.root / "chunks" / f"{name}.nc"

    def load(self, name: str) -> Outcome | None:
        """A stored chunk, checked against its recorded SHA-256 (None when absent).

        Args:
            name: the chunk's name.

        Returns:
            The chunk's Outcome, or None.

        Raises:
            ScenarioError: the file's hash differs from the manifest's (a swapped or
                corrupted chunk) or it cannot be read, naming it.
        """
        if self.root is None or not self.path(name).exists():
            return None
        p = self.path(name)
        fix = "delete it and resume (--resume) to recompute it"
        if self.sums is not None:
            if name not in self.sums:  # written, then killed before the manifest recorded it: recompute
                return None
            if _sha256(p) != self.sums[name]:
                raise ScenarioError(
                    f"chunk file {str(p)!r} does not match its checksum in the manifest (changed, "
                    f"swapped or corrupted); {fix}"
                )
        try:
            ds = xr.load_dataset(p, engine="h5netcdf")
            return Outcome(**{k: ds[k].values for k in Outcome._fields})
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in h5py in many ways
            raise ScenarioError(f"chunk file {str(p)!r} cannot be read ({type(exc).__name__}); {fix}") from None

    def save(self, name: str, out: Outcome) -> None:
        """Write a chunk atomically and record its SHA-256 in the manifest.

        Args:
            name: the chunk's name.
            out: its Outcome.
        """
        if self.root is None or self.readonly:
            return
        dims = {
            "failure_round": ("run", "mode"),
            "transients": ("run", "mode"),
            "final_value": ("run", "mode"),
            "worst_value": ("run", "mode"),
            "stat_max": ("run", "channel"),
            "alarm_round": ("run", "channel"),
            "finite": ("run",),
            "lam_max": ("run",),
            "undecided": ("run", "mode"),
            "worst_se": ("run", "mode"),
        }
        save_netcdf(xr.Dataset({k: (dims[k], np.asarray(getattr(out, k))) for k in Outcome._fields}), self.path(name))
        if self.sums is not None:
            self.sums[name] = _sha256(self.path(name))
            self._write_manifest()


def _execute(
    plan: Plan,
    store: Store,
    phase: str,
    points: np.ndarray,
    seeds: np.ndarray,
    thresholds: np.ndarray,
    chunk: int,
    done: list[int],
    total: int,
    progress: Progress | None,
    devices: int | None = None,
) -> Outcome:
    """Run the (point, seed) pairs grouped by static combo in chunks, reusing stored
    chunks; ``thresholds`` is (points, K). Returns the outcomes in the order of the runs.
    Phase ``theory``: the population-limit runs of the points (``sim/theory.py``)."""
    null = phase == "null"
    table = np.array([plan.values(p, null) for p in range(len(plan.points))], np.float32).reshape(len(plan.points), -1)
    combo = np.asarray(plan.combo_of)[points]
    result: dict[str, np.ndarray] = {}
    for c in range(len(plan.combo_keys)):
        idx = np.flatnonzero(combo == c)
        sc_c = plan.combo_scenario(c) if idx.size else None
        for start in range(0, idx.size, chunk):
            sel = idx[start : start + chunk]
            name = f"{phase}-{c:04d}-{start // chunk:06d}"
            out = store.load(name)
            if out is None:
                p = points[sel]
                out = run_batch(
                    sc_c,
                    plan.paths,
                    plan.detectors,
                    table[p],
                    seeds[sel],
                    thresholds[p],
                    devices=devices,
                    expected=phase == "theory",
                )
                store.save(name, out)
            for f in Outcome._fields:
                v = np.asarray(getattr(out, f))
                if f not in result:
                    result[f] = np.empty((len(points),) + v.shape[1:], v.dtype)
                result[f][sel] = v
            done[0] += sel.size
            if progress is not None:
                progress(done[0], total)
    return Outcome(**result)


def sweep(
    sc: Scenario,
    axes: Mapping[str, Sequence[Any]] | None = None,
    seeds: int = 8,
    *,
    store: str | Path | None = None,
    resume: bool = False,
    chunk: int = 256,
    progress: Progress | None = None,
    devices: int | None = None,
    max_runs: int | None = MAX_RUNS,
    attribute_nulls: bool = True,
    theory: bool = True,
) -> xr.Dataset:
    """The verdicts of ``sc`` over a grid of parameters and seeds (module docstring).

    Args:
        sc: the scenario every grid point starts from.
        axes: dotted field path -> values, e.g. {"personalization.lam": [0.01, 0.1]};
            none: one point, the scenario itself.
        seeds: seeds 0..seeds-1 per grid point.
        store: a folder for the chunks (atomic NetCDF) and the manifest; None: in memory.
        resume: reuse the finished chunks in ``store`` (their SHA-256 is checked).
        chunk: runs per stored chunk (rounded up to a device call).
        progress: called with (runs done, runs in all) after each chunk.
        devices: shard each device call's runs over this many devices (``sim.scale``).
        max_runs: refuse a request of more runs before any work (None: no limit).
        attribute_nulls: run the extra null runs that name who causes a null failure
            (False: ``null_cause`` is "" and ``null_failure_rate_lifted`` NaN).
        theory: run the population-limit runs of the theory's predicted regimes
            (False: the Dataset has no ``theory_*`` variables; for callers that read only
            the simulated verdicts).

    Returns:
        A Dataset over (*axes, seed, mode, detector, channel). The numbers do not depend on
        ``chunk`` or ``devices`` beyond float round-off.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    chunk = -(-chunk // CALL) * CALL
    plan = Plan(sc, axes or {}, seeds, max_runs)
    devices = distributed.default_devices(devices)
    store_ = _open_store(store, plan.spec(chunk), resume)
    S, Sn, K = plan.seeds, sc.monitor.calibration_seeds, len(plan.layout.channel)
    P, N = len(plan.points), len(plan.null_keys)
    null_points = np.repeat(np.asarray(plan.null_rep, int), Sn)
    null_seeds = np.tile(NULL_SEED0 + np.arange(Sn), N)
    main_points, main_seeds = np.repeat(np.arange(P), S), np.tile(np.arange(S), P)
    R = min(S, THEORY_DRAWS) if theory else 0
    theory_points, theory_seeds = np.repeat(np.arange(P), R), np.tile(THEORY_SEED0 + np.arange(R), P)
    total, done = null_points.size + main_points.size + theory_points.size, [0]
    null = _execute(
        plan, store_, "null", null_points, null_seeds, np.full((P, K), np.inf), chunk, done, total, progress, devices
    )
    cals = [
        calibrate_on_null(
            null.stat_max[n * Sn : (n + 1) * Sn], null.failure_round[n * Sn : (n + 1) * Sn], plan.layout, sc
        )
        for n in range(N)
    ]
    attrs = [
        _attribute(plan, n, cals[n]) if attribute_nulls else (np.full(len(MODES), np.nan), np.full(len(MODES), ""))
        for n in range(N)
    ]
    thresholds = np.stack([cals[plan.null_of[p]].thresholds for p in range(P)]).reshape(P, K)
    main = _execute(plan, store_, "main", main_points, main_seeds, thresholds, chunk, done, total, progress, devices)
    predicted = (
        _execute(plan, store_, "theory", theory_points, theory_seeds, thresholds, chunk, done, total, progress, devices)
        if theory
        else None
    )
    ds = assemble(plan, main, cals, null, attrs, predicted)
    if store_.root is not None and not store_.readonly:
        save_netcdf(ds, store_.root / "sweep.nc")
    distributed.sync("silentfail-sweep-written")  # the store is complete when any process returns
    return ds


def _open_store(root: str | Path | None, spec: dict, resume: bool) -> Store:
    """The sweep's store; in a multi-process sweep process 0 opens (or creates) it, and
    the other processes, once it has, open it read-only (``sim.distributed``)."""
    if distributed.process_count() == 1 or root is None:
        return Store(root, spec, resume)
    store, error = None, None
    if distributed.is_writer():
        try:
            store = Store(root, spec, resume)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the others
            error = exc
    if not distributed.agree(error is None):
        if error is not None:
            raise error
        raise ScenarioError(f"process 0 could not open the sweep store {str(root)!r} (its error is on its stderr)")
    return store if store is not None else Store(root, spec, resume=True, readonly=True)


def _attribute(plan: Plan, n: int, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~silentfail.sim.verdict.attribute_null` at null key ``n`` (its static combo's
    scenario, its traced values with the shift off)."""
    rep = plan.null_rep[n]
    return attribute_null(plan.combo_scenario(plan.combo_of[rep]), cal, plan.paths, np.asarray(plan.values(rep, True)))


def assemble(
    plan: Plan,
    main: Outcome,
    cals: list[Calibration],
    null: Outcome,
    attrs: list[tuple[np.ndarray, np.ndarray]],
    theory: Outcome | None = None,
) -> xr.Dataset:
    """The sweep Dataset from the per-run outcomes (grid order, seeds innermost) and the
    null attribution of each null key (:func:`_attribute`).

    Args:
        plan: the sweep's plan (axes, seeds, layout).
        main: the grid runs' outcomes.
        cals: one calibration per null key.
        null: the null runs' outcomes.
        attrs: per null key, the null attribution (lifted rates, causes).
        theory: the population-limit runs of each point (``sim/theory.py``), or None (no
            ``theory_*`` variables).

    Returns:
        The sweep Dataset over the axes, seed, mode, detector and channel.
    """
    sc, lay = plan.sc, plan.layout
    shape = tuple(len(v) for v in plan.axes.values())
    dims = tuple(plan.axes)
    S = plan.seeds
    r = lambda a: a.reshape(shape + (S,) + a.shape[1:])  # noqa: E731
    det = detection_rounds(main.alarm_round, lay, sc.monitor.attribution)
    j = judge(main.failure_round, det, sc.monitor.grace, sc.monitor.lead)
    t_f = r(main.failure_round)
    jr = type(j)(*(r(a) for a in j))
    summ = summarize(t_f, jr, axis=len(shape))
    valid_run = r(main.finite & stable(main.lam_max, _eta(plan)))
    valid = valid_run.all(axis=-1)
    P = len(plan.points)
    per_point = lambda arrs: np.stack(arrs).reshape(shape + arrs[0].shape)  # noqa: E731
    pt_cal = [cals[plan.null_of[p]] for p in range(P)]
    g, gs = dims, dims + ("seed",)
    data = {
        "failure_round": (gs + ("mode",), t_f),
        "final_value": (gs + ("mode",), r(main.final_value)),
        "worst_value": (gs + ("mode",), r(main.worst_value)),
        "detection_round": (gs + ("mode", "detector"), r(det)),
        "alarm_round": (gs + ("detector",), r(detector_alarms(main.alarm_round, lay))),
        "first_detection": (gs + ("mode",), jr.detection_round),
        "detected": (gs + ("mode",), jr.detected),
        "silent": (gs + ("mode",), jr.silent),
        "delay": (gs + ("mode",), jr.delay),
        "early_warning": (gs + ("mode",), jr.early_warning),
        "transient_crossings": (gs + ("mode",), r(main.transients)),
        "p_transient": (g + ("mode",), ((r(main.transients) > 0) & (t_f < 0)).mean(axis=len(shape))),
        "null_failure_rate": (g + ("mode",), per_point([c.null_failure_rate for c in pt_cal])),
        "caused_without_shift": (g + ("mode",), per_point([caused_without_shift(c, sc.monitor.alpha) for c in pt_cal])),
        "null_failure_rate_lifted": (g + ("mode",), per_point([attrs[plan.null_of[p]][0] for p in range(P)])),
        "null_cause": (g + ("mode",), per_point([attrs[plan.null_of[p]][1] for p in range(P)])),
        "null_rejected": (g, per_point([np.asarray(c.null_rejected) for c in pt_cal])),
        "valid_run": (gs, valid_run),
        "eta_lambda_max": (gs, r(_eta(plan) * main.lam_max)),
        "valid": (g, valid),
        "p_alarm": (g + ("detector",), (r(detector_alarms(main.alarm_round, lay)) >= 0).mean(axis=len(shape))),
        "final_value_mean": (g + ("mode",), r(main.final_value).mean(axis=len(shape))),
        "threshold": (g + ("channel",), per_point([c.thresholds for c in pt_cal])),
        "false_alarm_rate": (g + ("detector",), per_point([c.achieved for c in pt_cal])),
        "false_alarm_se": (g + ("detector",), per_point([c.achieved_se for c in pt_cal])),
        "calibrated": (g + ("detector",), per_point([c.calibrated for c in pt_cal])),
    }
    if not client_model(sc).exact:  # Monte Carlo metrics: how sure each verdict is
        undecided = r(main.undecided)
        data.update(
            undecided=(gs + ("mode",), undecided),
            worst_se=(gs + ("mode",), r(main.worst_se)),
            p_undecided=(
                g + ("mode",),
                np.where(valid_run[..., None], undecided, False).sum(len(shape))
                / np.maximum(valid_run.sum(-1), 1)[..., None],
            ),
        )
    if theory is not None:
        R = len(theory.finite) // P
        data.update(_theory_variables(plan, theory, g, shape))
    for k, v in summ.items():
        data[k] = (g + ("mode",), np.where(valid[..., None], v, np.nan))
    coords: dict[str, Any] = {a: np.asarray(v) for a, v in plan.axes.items()}
    coords.update(seed=np.arange(S), mode=list(MODES), detector=list(plan.detectors), channel=list(lay.channel))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        scenario=sc.to_json(),
        scenario_name=sc.name,
        axes=json.dumps(list(plan.axes)),
        static_axes=json.dumps(plan.static),
        seeds=S,
        alpha=sc.monitor.alpha,
        grace=sc.monitor.grace,
        lead=sc.monitor.lead,
        null=sc.monitor.null,
        persist=json.dumps(dict(zip(MODES, sc.thresholds.persistence()))),
        attribution=sc.monitor.attribution,
        calibration_seeds=sc.monitor.calibration_seeds,
        null_seed0=NULL_SEED0,
        **({"theory_draws": R, "theory_seed0": THEORY_SEED0} if theory is not None else {}),
        silentfail_version=_version(),
        kind="silentfail.sweep",
        spec_hash=hashlib.sha256(json.dumps(plan.spec(0), sort_keys=True).encode()).hexdigest()[:16],
    )
    return ds


def _theory_variables(plan: Plan, theory: Outcome, g: tuple[str, ...], shape: tuple[int, ...]) -> dict:
    """The ``theory_*`` variables of a sweep from its population-limit runs (grid order,
    draws innermost): the predicted regimes (:func:`~silentfail.sim.theory.judge_expected`),
    validity and the noise-free channel maxima."""
    P = len(plan.points)
    R = len(theory.finite) // P
    per_draw = lambda a: a.reshape((P, R) + a.shape[1:])  # noqa: E731
    pred = judge_expected(per_draw(theory.failure_round), per_draw(theory.alarm_round), plan.layout, plan.sc)
    ok = per_draw(theory.finite & stable(theory.lam_max, _eta(plan, R))).all(axis=1)
    return dict(
        theory_p_fail=(g + ("mode",), pred.p_fail.reshape(shape + (-1,))),
        theory_p_silent=(g + ("mode",), pred.p_silent.reshape(shape + (-1,))),
        theory_failure_round=(g + ("mode",), pred.failure_round.reshape(shape + (-1,))),
        theory_failed=(g + ("mode",), pred.failed.reshape(shape + (-1,))),
        theory_silent=(g + ("mode",), pred.silent.reshape(shape + (-1,))),
        theory_valid=(g, ok.reshape(shape)),
        theory_stat_max=(g + ("channel",), _draw_mean(per_draw(theory.stat_max)).reshape(shape + (-1,))),
    )


def _draw_mean(stat: np.ndarray) -> np.ndarray:
    """Mean over the population draws (axis 1) of the noise-free channel maxima, over
    the draws where the channel released something (NaN where none did)."""
    finite = np.isfinite(stat)
    total = np.where(finite, stat, 0.0).sum(axis=1)
    n = finite.sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _eta(plan: Plan, runs: int | None = None) -> np.ndarray:
    """personalization.eta per run (it may be an axis), ``runs`` per point (default: the seeds)."""
    etas = np.array([s.personalization.eta for s in plan.scenarios])
    return np.repeat(etas, plan.seeds if runs is None else runs)
