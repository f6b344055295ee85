"""Readable reports of a run (trace + verdict) or a sweep: self-contained Markdown
(figures embedded as base64 PNG) of what failed, what was caught by which detector, and
what stayed silent."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from .figures import mode_panels
from .sim.scenario import MODES


def _embed(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


MODE_HEADER = [
    "mode",
    "mean P(fail)",
    "mean P(early warning)",
    "mean P(detected given fail)",
    "mean P(silent given fail)",
    "mean P(silent)",
    "mean P(fail given null)",
    "cells failing",
    "cells silent",
    "median delay (rounds)",
]
DETECTOR_HEADER = ["detector", "achieved false-alarm rate (mean over cells)", "P(alarm)", "modes it ever caught"]


def _mean(ds: xr.Dataset, var: str, m: str) -> str:
    v = ds[var].sel(mode=m).values
    return _fmt(np.nanmean(v)) if np.isfinite(v).any() else "-"


def caused_text(ds: xr.Dataset, mode: str) -> str:
    """The flag of a mode the null runs already show: '' when none of ``ds``'s points
    has it caused without shift, else ' (caused without shift, by: the constraints; its
    detectors, calibrated on those null runs, cannot separate it)' with every cause its
    points name (``null_cause``; older results without it: no cause).

    Args:
        ds: a sweep or a verdict.
        mode: the mode.

    Returns:
        The flag text.
    """
    if not bool(ds["caused_without_shift"].sel(mode=mode).any()):
        return ""
    causes = (
        sorted({str(c) for c in np.ravel(ds["null_cause"].sel(mode=mode).values)} - {""}) if "null_cause" in ds else []
    )
    by = f", by: {' / '.join(causes)}" if causes else ""
    return f" (caused without shift{by}; its detectors, calibrated on those null runs, cannot separate it)"


def panel_note(ds: xr.Dataset, mode: str) -> str:
    """What a phase panel cannot show by colour: why it is empty (no cell fails: the
    largest P(fail) and the largest mean metric against the threshold) and whether the
    null runs fail too (caused without shift, and by whom); '' when neither applies.

    Args:
        ds: a sweep.
        mode: the mode.

    Returns:
        The note ('' when the colours say it all).
    """
    import json

    from .sim.scenario import scenario_from_dict

    notes = []
    pf = ds["p_fail"].sel(mode=mode).values
    if not np.any(pf >= 0.5):
        thr = scenario_from_dict(json.loads(ds.attrs["scenario"])).thresholds.threshold(mode)
        top = float(np.nanmax(ds["final_value_mean"].sel(mode=mode).values))
        notes.append(
            f"no cell fails: P(fail) <= {_fmt(float(np.nanmax(pf)))}, mean final metric <= {_fmt(top, 3)} "
            f"(threshold {_fmt(thr, 3)})"
        )
    flag = caused_text(ds, mode)
    if flag:
        notes.append(
            f"fails in up to {float(np.nanmax(ds['null_failure_rate'].sel(mode=mode).values)):.0%} of null runs{flag}"
        )
    return "; ".join(notes)


def sweep_mode_table(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Per mode, over the grid: mean P(fail), P(early warning), P(detected | fail),
    P(silent | fail), P(silent), the null runs' failure rate (flagged where the mode
    fails without any shift in more than alpha of them), the share of cells failing /
    silent (P >= 0.5) and the median delay.

    Args:
        ds: a sweep.

    Returns:
        (header, rows).
    """
    rows = []
    for m in MODES:
        pf, ps = ds["p_fail"].sel(mode=m).values, ds["p_silent"].sel(mode=m).values
        delay = ds["delay_median"].sel(mode=m).values
        null = _mean(ds, "null_failure_rate", m)
        null += caused_text(ds, m)
        rows.append(
            [
                m,
                _fmt(np.nanmean(pf)),
                _mean(ds, "p_early_warning", m),
                _mean(ds, "p_detected_given_fail", m),
                _mean(ds, "p_silent_given_fail", m),
                _fmt(np.nanmean(ps)),
                null,
                f"{np.mean(pf >= 0.5):.2f}",
                f"{np.mean(ps >= 0.5):.2f}",
                _fmt(np.nanmedian(delay), 1) if np.isfinite(delay).any() else "-",
            ]
        )
    return MODE_HEADER, rows


def setting_text(sc) -> str:
    """The constraint set in force (every one, the federated baseline included) and the
    detectors it leaves deployed, in one line.

    Args:
        sc: the scenario.

    Returns:
        The line.
    """
    from .constraints import scenario_constraints
    from .sim.detectors import deployed

    return (
        f"constraints in force: {', '.join(scenario_constraints(sc)) or 'none'}; "
        f"detectors deployed: {', '.join(deployed(sc)) or 'none'}"
    )


def detection_window(lead: int, grace: int) -> str:
    """The window in which an alarm detects a failure, e.g. ``[T_f, T_f + 5]``.

    Args:
        lead: ``monitor.lead``.
        grace: ``monitor.grace``.

    Returns:
        The window in words.
    """
    return f"[T_f - {int(lead)}, T_f + {int(grace)}]" if int(lead) else f"[T_f, T_f + {int(grace)}]"


def persistence_text(thresholds) -> str:
    """How long a crossing must last to be a failure, with the per-mode overrides.

    Args:
        thresholds: the scenario's thresholds section.

    Returns:
        The text.
    """
    extra = ", ".join(f"{m}: {n}" for m, n in thresholds.persist_by_mode.items())
    return f"{thresholds.persist} rounds over threshold" + (f" ({extra})" if extra else "")


def window_text(attrs) -> str:
    """The detection window and the null, in words.

    Args:
        attrs: a sweep's or verdict's attrs (lead, grace, null).

    Returns:
        The text.
    """
    window = detection_window(attrs.get("lead", 0), attrs["grace"])
    null = "the null runs in which no mode fails" if attrs.get("null") == "no_failure" else "the null runs (no shift)"
    return (
        f"an alarm detects a failure only in the window {window} (an earlier alarm is an early warning, reported "
        f"apart); a mode fails only if its metric stays over its threshold for thresholds.persist rounds "
        f"(or to the horizon); detectors calibrated on {null}"
    )


def sweep_detector_table(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Per detector: achieved false-alarm rate, P(alarm) and the modes it ever caught.

    Args:
        ds: a sweep.

    Returns:
        (header, rows).
    """
    far = ds["false_alarm_rate"].values.reshape(-1, ds.sizes["detector"])
    rows = []
    for i, d in enumerate(ds.detector.values):
        caught = [m for m in MODES if (ds["detection_round"].sel(detector=d, mode=m) >= 0).any()]
        rows.append(
            [
                str(d),
                _fmt(np.nanmean(far[:, i]), 3),
                _fmt(float(ds["p_alarm"].sel(detector=d).mean())),
                ", ".join(caught) or "-",
            ]
        )
    return DETECTOR_HEADER, rows


def theory_table(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Per mode, the agreement of the predicted regimes with the simulated majority
    regimes (:func:`silentfail.sim.theory.agreement`).

    Args:
        ds: a sweep with the theory variables.

    Returns:
        (header, rows).
    """
    from .sim.theory import theory_frame

    header = ["mode", "regime agreement", "failure agreement", "failure boundary distance", "silence boundary distance"]
    rows = [
        [
            r["mode"],
            f"{r['agreement']:.0%} of {r['cells']}",
            f"{r['failure_agreement']:.0%}",
            str(r["failure_distance"]),
            str(r["silence_distance"]),
        ]
        for r in theory_frame(ds)
    ]
    return header, rows


def sweep_markdown(ds: xr.Dataset, figure: str | Path | None = None) -> str:
    """A sweep's report: per mode the grid-averaged P(fail), P(silent), P(detected |
    fail), median delay; the detectors' calibration; the phase figure embedded.

    Args:
        ds: a sweep.
        figure: the phase figure to embed (None: none).

    Returns:
        The Markdown.
    """
    axes = json.loads(ds.attrs["axes"])
    sc = json.loads(ds.attrs["scenario"])
    out = [f"# silentfail sweep: {ds.attrs.get('scenario_name', '')}", ""]
    grid = (
        " x ".join(f"`{a}` ({ds.sizes[a]} values, {float(ds[a].min()):g} to {float(ds[a].max()):g})" for a in axes)
        or "one point"
    )
    out += [
        f"Grid: {grid}; {ds.attrs['seeds']} seeds per cell; detectors calibrated to alpha = {ds.attrs['alpha']} "
        f"on {ds.attrs['calibration_seeds']} null runs per cell (a quarter fixes the score, a quarter sets the conformal "
        f"quantile, half measure the achieved rate); {window_text(ds.attrs)}; "
        f"attribution `{ds.attrs['attribution']}`.",
        "",
    ]
    from .sim.scenario import scenario_from_dict

    out += [setting_text(scenario_from_dict(sc)) + ".", ""]
    header, rows = sweep_mode_table(ds)
    out += ["## What failed, what was caught, what stayed silent", "", _md_table(header, rows), ""]
    out += ["## Detectors", "", _md_table(*sweep_detector_table(ds)), ""]
    if "theory_failed" in ds:
        out += [
            "## Theory against simulation",
            "",
            "Predicted regime per cell (sim/theory.py: the population-limit run of "
            f"{ds.attrs.get('theory_draws', '')} population draws, every draw of the rounds replaced by its mean; "
            "a failure predicted silent where no channel's noise-free statistic crosses its level-alpha threshold in "
            "the detection window) against the simulated majority regime. Boundary distances in grid cells "
            "(the largest over the cells where the two differ).",
            "",
            _md_table(*theory_table(ds)),
            "",
        ]
    if figure is not None:
        fig_path = Path(figure)
        out += ["## Phase diagram", ""]
        data = None
        if fig_path.exists():
            data = "data:image/png;base64," + base64.b64encode(fig_path.read_bytes()).decode()
        out += [f"![phase diagram]({data or fig_path.name})", ""]
    bad = int((~ds["valid"].values.astype(bool)).sum())
    if bad:
        out += [
            f"**Warning:** {bad} cell(s) had a diverging run (non-finite values or unstable local steps); their probabilities are NaN.",
            "",
        ]
    out += ["## Scenario", "", "```json", json.dumps(sc, indent=1, sort_keys=True), "```", ""]
    return "\n".join(out)


def trace_markdown(trace: xr.Dataset, verdict: xr.Dataset) -> str:
    """One run's report: the verdict table and the mode metrics over rounds with their
    thresholds, failure rounds and first detections.

    Args:
        trace: the run's trace.
        verdict: its verdict.

    Returns:
        The Markdown (figures embedded as data URIs).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = [f"# silentfail run: {trace.attrs.get('scenario_name', '')}, seed {trace.attrs['seed']}", ""]
    from .sim.privacy import describe_attrs

    bad_round = int(trace.attrs.get("nonfinite_round", -1))
    if bad_round >= 0 or not np.isfinite(trace["mode_metric"].values).all():
        where = f"at round {bad_round}" if bad_round >= 0 else "(its mode metrics are not all finite)"
        out += [f"**This run diverged {where}: its metrics and verdict after that are not meaningful.**", ""]
    out += [
        f"{describe_attrs(trace.attrs)}.",
        "",
        f"Access: {', '.join(json.loads(trace.attrs.get('access', '[]')))}; detectors calibrated to alpha = "
        f"{verdict.attrs['alpha']} on {verdict.attrs['calibration_seeds']} null runs.",
        "",
    ]
    rows = []
    for m in MODES:
        tf = int(verdict["failure_round"].sel(mode=m))
        dets = [
            f"{d} ({int(r)})"
            for d, r in zip(verdict.detector.values, verdict["detection_round"].sel(mode=m).values)
            if r >= 0
        ]
        state = (
            "**silent**"
            if bool(verdict["silent"].sel(mode=m))
            else ("detected" if bool(verdict["detected"].sel(mode=m)) else "no failure")
        )
        if bool(verdict["early_warning"].sel(mode=m)):
            state += " (early warning)"
        null = _fmt(float(verdict["null_failure_rate"].sel(mode=m))) + caused_text(verdict, m)
        rows.append(
            [
                m,
                str(tf) if tf >= 0 else "-",
                str(int(verdict["transient_crossings"].sel(mode=m))),
                ", ".join(dets) or "-",
                state,
                null,
            ]
        )
    out += [f"Verdict rules: {window_text(verdict.attrs)}.", ""]
    out += [
        "## Verdict",
        "",
        _md_table(
            ["mode", "failure round", "transient crossings", "first alarms (round)", "verdict", "P(fail given null)"],
            rows,
        ),
        "",
    ]
    far_rows = [
        [
            str(d),
            _fmt(float(verdict["false_alarm_rate"].sel(detector=d)), 3),
            _fmt(float(verdict["false_alarm_se"].sel(detector=d)), 3),
        ]
        for d in verdict.detector.values
    ]
    out += ["## Detector calibration", "", _md_table(["detector", "achieved false-alarm rate", "SE"], far_rows), ""]
    modes = list(trace["mode"].values)
    fig, axes = mode_panels(len(modes), width=3.33, height=2.75, extra=0.0, sharex=True)
    for ax, m in zip(axes.flat, modes):
        ax.plot(trace["round"], trace["mode_metric"].sel(mode=m), color="#0072B2", lw=1.5)
        ax.axhline(float(trace["threshold"].sel(mode=m)), color="black", ls=":", lw=1)
        tf = int(verdict["failure_round"].sel(mode=m))
        td = int(verdict["first_detection"].sel(mode=m))
        if tf >= 0:
            ax.axvline(tf, color="#D55E00", lw=1.2, label="failure")
        if td >= 0:
            ax.axvline(td, color="#009E73", lw=1.2, ls="--", label="detecting alarm")
        ax.set_title(m.replace("_", " "), fontsize=9)
        ax.set_xlabel("round", fontsize=8)
    for ax in axes.flat:  # the legend on the first panel that draws a failure or an alarm
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
            break
    out += ["## Mode metrics over rounds", "", f"![mode metrics]({_embed(fig)})", ""]
    plt.close(fig)
    return "\n".join(out)


ESTIMATE_HEADER = [
    "mode",
    "quantity",
    "boundary at x min / mid / max (median [90% band])",
    "P(in range)",
    "R-hat",
    "ESS bulk",
    "ESS tail",
    "divergences",
    "status",
]


def estimate_rows(est: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Per (mode, quantity): the posterior boundary at three x positions ("outside the
    grid" where the posterior puts less than half its mass inside the axis domain), the
    chance it lies inside the grid, and the convergence diagnostics of the fit.

    Args:
        est: a boundary estimate.

    Returns:
        (header, rows).
    """
    rows = []
    n = est.sizes["x_fine"]
    for m in est["mode"].values:
        for q in est["quantity"].values:
            e = est.sel(mode=m, quantity=q)
            pts = []
            for i in (0, n // 2, n - 1):
                lo, med, hi = (float(e[v].values[i]) for v in ("boundary_q05", "boundary_median", "boundary_q95"))
                pts.append(f"{_fmt(med, 3)} [{_fmt(lo, 3)}, {_fmt(hi, 3)}]" if med == med else "outside the grid")
            rows.append(
                [
                    str(m),
                    str(q),
                    " / ".join(pts),
                    _fmt(float(e["p_boundary_in_range"].mean())),
                    _fmt(float(e["r_hat"]), 3),
                    _fmt(float(e["ess_bulk"]), 0),
                    _fmt(float(e["ess_tail"]), 0),
                    str(int(e["divergences"])),
                    "FLAGGED: " + str(e["reasons"].values)
                    if bool(e["flagged"])
                    else ("ok" if str(e["status"].values) == "fit" else str(e["status"].values)),
                ]
            )
    return ESTIMATE_HEADER, rows


def estimate_markdown(est: xr.Dataset) -> str:
    """The diagnostics table of a boundary estimate as Markdown.

    Args:
        est: a boundary estimate.

    Returns:
        The Markdown.
    """
    x, y = est.attrs["x_axis"], est.attrs["y_axis"]
    xv = est["x_fine"].values
    head = (
        f"# Posterior phase boundaries\n\nModel: {est.attrs.get('model')} (link {est.attrs.get('link')}), "
        f"{est.attrs.get('chains')} NUTS chains x {est.attrs.get('draws')} draws. The boundary is the {y} at which "
        f"P = 1/2, as a function of {x} (at {x} = {xv[0]:.4g} / {xv[len(xv) // 2]:.4g} / {xv[-1]:.4g}). A fit is "
        f"flagged when R-hat > {est.attrs.get('rhat_max')}, any transition diverged, or a bulk/tail ESS is below "
        f"{est.attrs.get('ess_min'):.0f}.\n\n"
    )
    return head + _md_table(*estimate_rows(est)) + "\n"


def literature_rows(results: dict[str, xr.Dataset]) -> tuple[list[str], list[list[str]]]:
    """One row per literature claim: the claim, the quantity, its mean in the first and
    last arm, the effect (signed so the claim predicts > 0) with its SE, and the verdict.

    Args:
        results: ``{claim key: result}``.

    Returns:
        (header, rows).
    """
    from .sim.literature import verdict_word

    header = ["claim", "quantity", "first arm", "last arm", "effect (SE)", "margin", "holds"]
    rows = []
    for ds in results.values():
        q = ds.attrs["quantity"]
        m = ds["mean"].sel(quantity=q).values
        x = ds["x"].values
        rows.append(
            [
                ds.attrs["title"],
                q,
                f"{_fmt(m[0], 3)} ({x[0]})",
                f"{_fmt(m[-1], 3)} ({x[-1]})",
                f"{_fmt(ds.attrs['effect'], 3)} ({_fmt(ds.attrs['effect_se'], 3)})",
                _fmt(ds.attrs["margin"], 3),
                verdict_word(ds),
            ]
        )
    return header, rows


def literature_markdown(results: dict[str, xr.Dataset], figure: str | Path | None = None) -> str:
    """The literature claims as a Markdown report: the table and every claim's statement.

    Args:
        results: ``{claim key: result}``.
        figure: the claims figure to embed.

    Returns:
        The Markdown.
    """
    header, rows = literature_rows(results)
    parts = [
        "# The literature's claims in the stylized world",
        "",
        "A claim holds when the quantity moves from the first arm to the last in the predicted direction "
        "by more than the margin and more than 3 standard errors (seeds independent across arms).",
        "",
        _md_table(header, rows),
        "",
    ]
    if figure is not None:
        parts += [f"![claims]({Path(figure).name})", ""]
    for ds in results.values():
        cites = ", ".join(json.loads(ds.attrs["cites"]))
        parts += [
            f"## {ds.attrs['title']}",
            "",
            f"{ds.attrs['statement']} ({cites})",
            "",
            f"Arms: {ds.attrs['axis_label']} = {', '.join(str(v) for v in ds['x'].values)}; "
            f"{ds.sizes['seed']} seeds per arm.",
            "",
        ]
    return "\n".join(parts)


def _pm(mean: float, se: float, digits: int = 3) -> str:
    return "-" if not np.isfinite(mean) else f"{mean:.{digits}g} ± {se:.2g}"


def influence_rows(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """The influence table's header and rows (one per pair, the paper's edges first).

    Args:
        ds: :func:`silentfail.sim.influence.influences`' Dataset.

    Returns:
        (header, rows).
    """
    header = [
        "source",
        "target",
        "paper",
        "raise of source",
        "effect on target",
        "through source",
        "mediated share",
        "precedence",
        "verdict",
    ]
    order = sorted(range(ds.sizes["pair"]), key=lambda i: (str(ds["strength"].values[i]) == "none", i))
    rows = []
    for i in order:
        v = {k: ds[k].values[i].item() for k in ds.data_vars}
        verdict = v["verdict"].replace("_", " ") + (f" ({v['reason']})" if v["reason"] else "")
        rows.append(
            [
                v["source"],
                v["target"],
                v["strength"],
                _pm(v["d_source"], v["d_source_se"]),
                _pm(v["effect"], v["se"]),
                _pm(v["through"], v["through_se"]),
                _fmt(v["mediated_share"]),
                _fmt(v["precedence"]),
                verdict,
            ]
        )
    return header, rows


def influence_note(row: dict) -> str:
    """The taxonomy note of a measured influence edge, e.g. "supported in simulation
    (effect through the source 0.04 ± 0.005; ...)".

    Args:
        row: one pair's values (the Dataset's variables).

    Returns:
        The note.
    """
    text = f"{row['verdict'].replace('_', ' ')} in simulation"
    if row["verdict"] == "untestable":
        return f"{text}: {row['reason']}"
    return (
        f"{text} (effect through the source {_pm(row['through'], row['through_se'])}; total effect "
        f"{_pm(row['effect'], row['se'])}; mediated share {_fmt(row['mediated_share'])})"
    )


def influences_markdown(ds: xr.Dataset, figure: str | Path | None = None) -> str:
    """influences.md: the setting, how each source is raised, the verdict on each of the
    paper's edges and the full table.

    Args:
        ds: :func:`silentfail.sim.influence.influences`' Dataset.
        figure: the figure's path to link.

    Returns:
        Markdown text.
    """
    import json

    from .sim.scenario import scenario_from_dict

    sc = scenario_from_dict(json.loads(ds.attrs["scenario"]))
    verdicts = [str(v) for v in ds["verdict"].values]
    paper = [i for i in range(ds.sizes["pair"]) if str(ds["strength"].values[i]) != "none"]
    counts = {v: sum(verdicts[i] == v for i in paper) for v in ("supported", "not_supported", "reversed", "untestable")}
    lines = [
        "# The influence edges, tested by intervention",
        "",
        f"Scenario `{sc.name}` ({setting_text(sc)}); {ds.attrs['seeds']} seeds per arm, intervention strength "
        f"delta = {ds.attrs['delta']:g} (the move is delta times the model's norm), a verdict needs a one-sided t test at level "
        f"{ds.attrs['alpha']:.2g} (3 sigma) and a margin of {ds.attrs['margin']:g} times the target's failure threshold; {ds.attrs['wall_s']:.0f} s.",
        "",
        "Each source mode is raised by moving every client's model along a mechanism the taxonomy lists as its "
        f"cause ({ds.attrs['mechanisms']}); the control moves the same cause with the source's mechanism blocked "
        "(the component of the move along the gradient of the client's own source metric removed). The effect "
        "through the source is the target's response that the block removes.",
        "",
        f"Of the paper's {len(paper)} edges: "
        + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items())
        + ".",
        "",
    ]
    if figure is not None:
        lines += [f"![influences]({Path(figure).name})", ""]
    lines.append(_md_table(*influence_rows(ds)))
    return "\n".join(lines) + "\n"


def transfer_markdown(claims: xr.Dataset, phase: xr.Dataset | None, figure: str | Path | None = None) -> str:
    """The transfer table as a Markdown report: which claims and which phase regimes of the
    linear readout hold under the nonlinear client models.

    Args:
        claims: ``sim.transfer.transfer_claims``' Dataset.
        phase: ``sim.transfer.transfer_phase``' Dataset, or None.
        figure: the figure to embed.

    Returns:
        The Markdown.
    """
    from .sim.transfer import regime_rows, transfer_rows

    t = claims["transfers"].values
    parts = [
        "# Do the conclusions survive a nonlinear client model?",
        "",
        "Every model runs on the clients' finite samples. A claim holds when its quantity moves in the predicted "
        "direction by more than its margin and 3 SE; it transfers when every model it applies to gives the linear "
        "readout's verdict. n/a: the claim's mechanism is the linear readout's only.",
        "",
        _md_table(*transfer_rows(claims)),
        "",
        f"Claims that transfer: {int(np.nansum(t))} of {int(np.sum(~np.isnan(t)))} comparable.",
        "",
    ]
    why = [
        f"- {claims['title'].values[i]} under {m}: {claims['reason'].values[i, j]}"
        for i in range(claims.sizes["claim"])
        for j, m in enumerate(claims["model"].values)
        if not claims["applies"].values[i, j]
    ]
    if why:
        parts += ["Not applicable:", "", *why, ""]
    if phase is not None:
        parts += [
            f"## The coarse phase diagram ({phase.attrs['axes']}, {phase.attrs['seeds']} seeds a cell)",
            "",
            "Per mode, the share of cells whose majority regime (none / detected / silent) is the linear "
            "readout's, and each model's failing / silent cell counts.",
            "",
            _md_table(*regime_rows(phase)),
            "",
        ]
    if figure is not None:
        parts += [f"![transfer]({Path(figure).name})", ""]
    return "\n".join(parts)
