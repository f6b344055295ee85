"""Do the stylized world's conclusions survive a nonlinear client model? The transfer
table runs the literature's claims (:mod:`sim.literature`) and a coarse version of the
default phase diagram under each client model (the linear readout, the flax MLP, the
frozen backbone with a LoRA adapter, and the MLP on a real dataset) and says, claim by claim and cell by cell, whether
the models agree.

Every model runs on the clients' finite samples (``population.mode = "finite"``: the
linear readout's exact finite-sample statistics, the flax models' optax steps on the
materialized samples), so what differs between the columns is the model alone.

* **Claims**: each claim's experiment (its arms and quantity, :func:`run_claim`) with the
  model's overrides; a claim whose mechanism a model does not have (a teacher, public
  rounds: linear-only rules) is *not applicable* to it, with the scenario's own reason.
  A claim *transfers* when every model it applies to gives the linear readout's verdict
  (holds or not, :func:`sim.literature.assess`).
* **Regimes**: the ``phase`` preset over the proximal strength lambda x shift strength,
  each cell's regime per mode the majority over seeds of none / detected / silent
  (detectors calibrated on the model's own null runs); a cell transfers when the model's
  regime is the linear readout's.

References:
    Kumar et al. (2022), Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution, ICLR (linear probes against fine-tuning, the stylized model's
    premise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .literature import CLAIM_KEYS, claim_with, get_claim, run_claim_saved
from .scenario import GAUSSIAN_CELLS, MODES, preset
from .scenario import World as WorldSection

#: The client models the table compares, in its column order: the stylized world's
#: linear readout (the reference), the flax MLP, the LoRA model, and the real-data
#: bridge (the MLP on scikit-learn's handwritten digits, ``sim/realdata.py``).
MODEL_KINDS = ("linear", "mlp", "lora", "digits")

#: The overrides that put a scenario on each client model (all on finite samples).
MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    "linear": {"population.mode": "finite"},
    "mlp": {"model.kind": "mlp", "population.mode": "finite"},
    "lora": {"model.kind": "lora", "population.mode": "finite"},
    # the real cells replace the Gaussian ones: a preset's cell shape is reset (an arm that varies it is n/a)
    "digits": {
        "model.kind": "mlp",
        "population.mode": "finite",
        "world.data": "digits",
        **{f"world.{k}": WorldSection.model_fields[k].default for k in GAUSSIAN_CELLS},
    },
}

#: ``--quick``: the claims at 12 rounds and 4 seeds per arm, the phase grid 3 x 3 cells x 4
#: seeds of 100 clients and 12 rounds (the detectors' 80 null runs per lambda kept); for
#: every model an out-of-domain panel of 4 clients, and 32 held-out draws per cell and
#: replicate for the Monte Carlo models (3x the speed of the defaults' 16 and 64: the
#: panel's draws dominate a Monte Carlo client-round).
QUICK_EVAL = {"population.ood_subset": 4, "model.eval_samples": 32}
QUICK_CLAIMS = {"federation.rounds": 12, **QUICK_EVAL}
QUICK_SEEDS = 4
QUICK_PHASE = {
    "population.num_clients": 100,
    "federation.clients_per_round": 100,
    "federation.rounds": 12,
    **QUICK_EVAL,
}

#: The coarse phase grid: lambda (log-spaced) x shift strength.
PHASE_AXES = {"personalization.lam": [0.01, 0.1, 1.0], "shifts.strength": [0.0, 0.5, 1.0]}

#: The regimes of a cell, by code.
REGIMES = ("none", "detected", "silent")


def overrides(kind: str, size: dict[str, Any] | None = None) -> dict[str, Any]:
    """The field overrides of client model ``kind`` with ``size``'s (its ``model.*`` fields
    only for the Monte Carlo models: the linear readout has none).

    Args:
        kind: one of :data:`MODEL_KINDS`.
        size: more overrides (run sizes, evaluation sizes), or None.

    Returns:
        ``{path: value}``.
    """
    size = {k: v for k, v in (size or {}).items() if kind != "linear" or not k.startswith("model.")}
    return {**MODEL_OVERRIDES[kind], **size}


def release_programs() -> None:
    """Drop the compiled programs of the experiment just finished (``sim.clear_caches``):
    every (claim, model) compiles programs of its own, and a whole table kept in memory
    exhausts LLVM's code memory ("Unable to allocate section memory") after a few dozen
    experiments; the persistent compilation cache on disk is kept."""
    from . import clear_caches

    clear_caches()


def claim_on_model(key: str, kind: str, size: dict[str, Any] | None = None):
    """The claim ``key`` with the scenario of client model ``kind`` (and ``size``'s overrides).

    Args:
        key: a claim key.
        kind: one of :data:`MODEL_KINDS`.
        size: more overrides (run sizes), or None.

    Returns:
        (the Claim, None), or (None, the reason it does not apply to the model).
    """
    return claim_with(key, overrides(kind, size))


def transfer_claims(
    keys: Sequence[str] = CLAIM_KEYS,
    kinds: Sequence[str] = MODEL_KINDS,
    seeds: int | None = None,
    size: dict[str, Any] | None = None,
    progress: Callable[[str, str], None] | None = None,
    folder: Path | str | None = None,
) -> xr.Dataset:
    """Each claim under each client model: Dataset over (claim, model) of ``holds`` (1, 0,
    NaN where not applicable or undetermined), ``effect`` and ``effect_se`` (:func:`sim.literature.assess`),
    ``applies`` and the reason where it does not (``reason``), and per claim ``transfers``.

    Args:
        keys: the claims.
        kinds: the client models (the first is the reference, the linear readout).
        seeds: seeds per arm (default: each claim's own).
        size: overrides of every claim's run size (``--quick``: :data:`QUICK_CLAIMS`).
        progress: called with (claim, model) after each experiment.
        folder: each experiment's result is saved at ``folder/<model>/<claim>.nc`` as it
            finishes and reused when it is the same experiment
            (:func:`sim.literature.run_claim_saved`): an interrupted table resumes.

    Returns:
        The Dataset.
    """
    shape = (len(keys), len(kinds))
    holds, effect, se = (np.full(shape, np.nan) for _ in range(3))
    reason = np.full(shape, "", dtype=object)
    applies = np.zeros(shape, bool)
    for i, key in enumerate(keys):
        for j, kind in enumerate(kinds):
            claim, why = claim_on_model(key, kind, size)
            if claim is None:
                reason[i, j] = why
            else:
                path = Path(folder) / kind / f"{key}.nc" if folder is not None else None
                ds = run_claim_saved(claim, seeds, path)
                release_programs()
                holds[i, j], effect[i, j], se[i, j] = ds.attrs["holds"], ds.attrs["effect"], ds.attrs["effect_se"]
                applies[i, j] = True
                reason[i, j] = ds.attrs.get("undetermined", "")  # applies, but no verdict: why
            if progress is not None:
                progress(key, kind)
    out = xr.Dataset(
        {
            "holds": (("claim", "model"), holds),
            "effect": (("claim", "model"), effect),
            "effect_se": (("claim", "model"), se),
            "applies": (("claim", "model"), applies),
            "reason": (("claim", "model"), reason.astype(str)),
        },
        coords={"claim": list(keys), "model": list(kinds), "title": ("claim", [get_claim(k).title for k in keys])},
    )
    out["transfers"] = ("claim", [_agree(holds[i]) for i in range(len(keys))])
    out.attrs.update(kind="silentfail.transfer.claims", seeds=-1 if seeds is None else seeds)
    return out


def _agree(verdicts: np.ndarray) -> float:
    """1 when every applicable verdict equals the reference's (the first), 0 when one differs,
    NaN when the reference or every other model does not apply."""
    ref, rest = verdicts[0], verdicts[1:][~np.isnan(verdicts[1:])]
    if math.isnan(ref) or rest.size == 0:
        return math.nan
    return float(np.all(rest == ref))


def cell_regimes(ds: xr.Dataset) -> xr.DataArray:
    """The majority regime of every (cell, mode) of a sweep over seeds: 0 none, 1 detected,
    2 silent (ties: the more severe); invalid runs are left out.

    Args:
        ds: a sweep (``silent``, ``failure_round``, ``valid_run``).

    Returns:
        (*axes, mode) int codes into :data:`REGIMES`.
    """
    failed = (ds["failure_round"] >= 0) & ds["valid_run"]
    silent = ds["silent"].astype(bool) & failed
    counts = xr.concat(
        [(~failed & ds["valid_run"]).sum("seed"), (failed & ~silent).sum("seed"), silent.sum("seed")], dim="regime"
    )
    # argmax of the reversed counts breaks ties toward the more severe regime
    return (len(REGIMES) - 1) - counts.isel(regime=slice(None, None, -1)).argmax("regime")


def transfer_phase(
    kinds: Sequence[str] = MODEL_KINDS,
    seeds: int = 8,
    size: dict[str, Any] | None = None,
    axes: dict[str, list] | None = None,
    progress: Callable[[str], None] | None = None,
    folder: Path | str | None = None,
) -> xr.Dataset:
    """The coarse default phase diagram under each client model: Dataset over (model,
    *axes, mode) of ``regime`` (codes into :data:`REGIMES`), ``p_fail``, ``p_silent`` and
    ``p_undecided`` (a Monte Carlo model's verdicts open within 2 SE; NaN for exact ones),
    and per (model, mode) ``agreement``, the share of cells whose regime is the reference
    model's (the first).

    Args:
        kinds: the client models.
        seeds: seeds per cell.
        size: overrides of the ``phase`` preset's run size (``--quick``: :data:`QUICK_PHASE`).
        axes: the grid (default :data:`PHASE_AXES`).
        progress: called with the model after its sweep.
        folder: each model's sweep is a resumable store at ``folder/<model>``
            (``sim.sweep``'s ``store``): an interrupted grid resumes.

    Returns:
        The Dataset.
    """
    from .sweep import sweep

    axes = axes or PHASE_AXES
    per_model = []
    for kind in kinds:
        sc = preset("phase").replace(**overrides(kind, size))
        store = Path(folder) / kind if folder is not None else None
        ds = sweep(sc, axes, seeds=seeds, theory=False, attribute_nulls=False, store=store, resume=True)
        failed = (ds["failure_round"] >= 0) & ds["valid_run"]
        n = ds["valid_run"].sum("seed")
        per_model.append(
            xr.Dataset(
                {
                    "regime": cell_regimes(ds),
                    "p_fail": failed.sum("seed") / n,
                    "p_silent": (ds["silent"].astype(bool) & failed).sum("seed") / n,
                    # a Monte Carlo model's verdicts open within 2 SE (NaN: exact metrics)
                    "p_undecided": (
                        ds["p_undecided"] if "p_undecided" in ds else xr.full_like(failed.sum("seed"), np.nan, float)
                    ),
                }
            )
        )
        release_programs()
        if progress is not None:
            progress(kind)
    out = xr.concat(per_model, dim=xr.DataArray(list(kinds), dims="model", name="model"))
    cells = [d for d in out["regime"].dims if d not in ("model", "mode")]
    out["agreement"] = (out["regime"] == out["regime"].isel(model=0)).mean(cells)
    out.attrs.update(kind="silentfail.transfer.phase", seeds=seeds, axes=str(list(axes)))
    return out


def transfer_rows(claims: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """The claims' side-by-side table: claim, each model's verdict with effect and SE, agree?

    Args:
        claims: :func:`transfer_claims`' Dataset.

    Returns:
        (header, rows) of strings.
    """
    kinds = [str(k) for k in claims["model"].values]
    header = ["claim"] + kinds + ["transfers"]
    rows = []
    for i, key in enumerate(claims["claim"].values):
        row = [f"{claims['title'].values[i]} ({key})"]
        for j in range(len(kinds)):
            if not claims["applies"].values[i, j]:
                row.append("n/a")
            else:
                h, e, s = (float(claims[v].values[i, j]) for v in ("holds", "effect", "effect_se"))
                row.append("undetermined" if math.isnan(h) else f"{'holds' if h else 'fails'} {e:+.3f} ± {s:.3f}")
        t = float(claims["transfers"].values[i])
        row.append("-" if math.isnan(t) else ("yes" if t else "no"))
        rows.append(row)
    return header, rows


def regime_rows(phase: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Per mode, each model's share of cells in the reference model's regime, its failing /
    silent cells, and for a Monte Carlo model the share of its runs' verdicts left open
    within 2 SE (mean over cells).

    Args:
        phase: :func:`transfer_phase`' Dataset.

    Returns:
        (header, rows) of strings.
    """
    kinds = [str(k) for k in phase["model"].values]
    cells_of = [d for d in phase["regime"].dims if d not in ("model", "mode")]
    mc = [k for k in kinds if "p_undecided" in phase and not np.isnan(phase["p_undecided"].sel(model=k).values).all()]
    header = (
        ["mode"]
        + [f"{k}: agrees" for k in kinds[1:]]
        + [f"{k}: fail/silent cells" for k in kinds]
        + [f"{k}: undecided" for k in mc]
    )
    rows = []
    for mode in MODES:
        r = phase["regime"].sel(mode=mode)

        def cells(k: str, code: int, r=r) -> int:
            return int((r.sel(model=k) == code).sum())

        rows.append(
            [mode]
            + [f"{float(phase['agreement'].sel(model=k, mode=mode)):.0%}" for k in kinds[1:]]
            + [f"{cells(k, 1) + cells(k, 2)}/{cells(k, 2)}" for k in kinds]
            + [f"{float(phase['p_undecided'].sel(model=k, mode=mode).mean(cells_of)):.0%}" for k in mc]
        )
    return header, rows


#: BibTeX of the client models and the dataset the transfer table uses (the paper's
#: bibliography carries it).
BIBTEX = r"""
@inproceedings{hu2022lora,
  title = {{LoRA}: Low-Rank Adaptation of Large Language Models},
  author = {Hu, Edward J. and Shen, Yelong and Wallis, Phillip and Allen-Zhu, Zeyuan and Li, Yuanzhi and Wang, Shean and Wang, Lu and Chen, Weizhu},
  booktitle = {International Conference on Learning Representations},
  year = {2022}
}

@misc{alpaydin1998digits,
  title = {Optical Recognition of Handwritten Digits},
  author = {Alpaydin, E. and Kaynak, C.},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49},
  year = {1998}
}

@article{pedregosa2011scikit,
  title = {Scikit-learn: Machine Learning in {P}ython},
  author = {Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal = {Journal of Machine Learning Research},
  volume = {12},
  pages = {2825--2830},
  year = {2011}
}

@misc{heek2024flax,
  title = {Flax: A neural network library and ecosystem for {JAX}},
  author = {Heek, Jonathan and Levskaya, Anselm and Oliver, Avital and Ritter, Marvin and Rondepierre, Bertrand and Steiner, Andreas and van Zee, Marc},
  howpublished = {\url{http://github.com/google/flax}},
  year = {2024}
}
"""
