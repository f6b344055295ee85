"""Phase figures: for each mode, the regime of every grid cell over two swept axes
(no failure / failure detected / silent failure), with the P = 0.5 contours of
P(fail) and P(silent). Okabe-Ito colours (colour-blind safe), labelled axes with units,
PDF and PNG.

Reference:
    Okabe, Ito (2008), Color Universal Design (CUD): How to make figures and
    presentations that are friendly to colorblind people.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from .sim.estimate import is_log_axis
from .sim.scenario import MODES

#: Regimes and their Okabe-Ito colours.
REGIMES = ("no failure", "failure detected", "silent failure")
COLOURS = ("#F2F2F2", "#56B4E9", "#D55E00")

#: Axis labels with units for the fields users sweep most.
LABELS = {
    "personalization.lam": r"proximal penalty $\lambda$ (larger = closer to the global model)",
    "shifts.strength": "shift strength $f$ (0 = none, 1 = full)",
    "federation.noise_multiplier": "DP noise multiplier $z$ (std / clip norm)",
    "federation.participation": "participation probability $q$",
    "personalization.eta": r"local learning rate $\eta$",
    "shifts.spurious_mean": r"mean client spurious correlation $\bar r$",
    "shifts.concept_angle": "concept-shift angle std (rad)",
    "shifts.covariate_scale": "covariate mean-shift std (feature units)",
    "personalization.beta": r"teacher weight $\beta$",
    "federation.participation_disparity": "participation disparity (0-1)",
}

TITLES = {m: m.replace("_", " ").capitalize() for m in MODES}


def mode_title(mode: str) -> str:
    """A panel title for ``mode``: the built-in title, else the registered mode's name.

    Args:
        mode: a mode id.

    Returns:
        The title.
    """
    from .sim.registry import MODE_REGISTRY

    return TITLES.get(mode) or (MODE_REGISTRY[mode].name if mode in MODE_REGISTRY else mode.replace("_", " "))


def mode_panels(n: int, *, width: float = 3.5, height: float = 3.2, extra: float = 0.6, **kwargs):
    """A grid of panels for ``n`` modes, three to a row (two rows for the six built-in
    modes; a seventh mode starts a third row); the panels past ``n`` are hidden.

    Args:
        n: number of modes (panels).
        width, height: inches per panel.
        extra: inches added to the height (the legend).
        **kwargs: passed to ``matplotlib.pyplot.subplots`` (sharex, sharey, ...).

    Returns:
        (figure, panels (rows, columns) array).
    """
    import matplotlib.pyplot as plt

    ncol = min(3, max(n, 1))
    nrow = -(-max(n, 1) // ncol)
    fig, panels = plt.subplots(
        nrow, ncol, figsize=(width * ncol, height * nrow + extra), constrained_layout=True, squeeze=False, **kwargs
    )
    for ax in panels.flat[n:]:
        ax.set_visible(False)
    for ax in bottom_panels(panels, n):  # the lowest panel of each column keeps its x tick labels
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig, panels


def bottom_panels(panels: np.ndarray, n: int) -> list:
    """The lowest of the first ``n`` panels in each column of a :func:`mode_panels` grid.

    Args:
        panels: the (rows, columns) grid.
        n: the visible panels.

    Returns:
        One Axes per column.
    """
    nrow, ncol = panels.shape
    return [panels[min(nrow - 1, (n - 1 - c) // ncol), c] for c in range(ncol) if c < n]


Overlay = Callable[[xr.Dataset, str], "tuple[np.ndarray, np.ndarray] | None"]


def regimes(ds: xr.Dataset) -> xr.DataArray:
    """Regime index per cell and mode (:func:`silentfail.sim.theory.simulated_regime`):
    0 no failure, 1 detected, 2 silent, -1 invalid.

    Args:
        ds: a sweep (``p_fail``, ``p_silent``).

    Returns:
        int DataArray over the sweep's axes and mode.
    """
    from .sim.theory import simulated_regime

    return simulated_regime(ds)


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    x = np.log10(v) if log else v.astype(float)
    if len(x) == 1:
        mid = np.array([x[0] - 0.5, x[0] + 0.5])
    else:
        inner = (x[1:] + x[:-1]) / 2
        mid = np.concatenate([[x[0] - (inner[0] - x[0])], inner, [x[-1] + (x[-1] - inner[-1])]])
    return 10**mid if log else mid


def phase_figure(
    ds: xr.Dataset, out: str | Path, *, overlay: Overlay | None = None, title: str | None = None
) -> list[Path]:
    """One panel per mode (three to a row) of the regimes over the sweep's two axes, with
    the simulated P(fail) = 1/2 and P(silent) = 1/2 contours and the theory's predicted
    failure and silence boundaries (``theory_failed``, ``theory_silent``; sim/theory.py);
    writes ``out``.pdf, ``out``.png and the drawn theory boundaries as
    ``out``.overlay.json ({mode: {"failure": [[[x, y], ...], ...], "silence": ...}}, the
    contour segments in axis units), and returns their paths.

    Args:
        ds: a two-axis sweep.
        out: the path without suffix.
        overlay: ``(ds, mode) -> (x, y) | None``, a further theory curve drawn over a panel.
        title: the figure's title (default: from the scenario).

    Returns:
        The PDF, PNG and overlay JSON paths.

    Raises:
        ValueError: a sweep over other than two axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    axes = json.loads(ds.attrs["axes"])
    if len(axes) != 2:
        raise ValueError(f"a phase figure needs a sweep over exactly two axes, got {len(axes)}: {axes}")
    xname, yname = axes
    xv, yv = ds[xname].values.astype(float), ds[yname].values.astype(float)
    xlog, ylog = is_log_axis(xv), is_log_axis(yv)
    from .report import panel_note

    reg = regimes(ds)
    cmap = ListedColormap(("#FFFFFF",) + COLOURS)  # -1 (invalid) white
    modes = list(ds["mode"].values)
    fig, panels = mode_panels(len(modes), width=3.5, height=3.0, extra=0.6, sharex=True, sharey=True)
    X, Y = np.meshgrid(_edges(xv, xlog), _edges(yv, ylog), indexing="ij")
    drawn: dict[str, dict[str, list]] = {}
    for ax, mode in zip(panels.flat, modes):
        r = reg.sel(mode=mode).transpose(xname, yname).values
        ax.pcolormesh(X, Y, r + 1, cmap=cmap, vmin=0, vmax=3, shading="flat")
        if len(xv) > 1 and len(yv) > 1:
            for var, style in (("p_fail", "-"), ("p_silent", "--")):
                z = ds[var].sel(mode=mode).transpose(xname, yname).values
                if np.nanmax(z) >= 0.5 > np.nanmin(z):
                    ax.contour(
                        *np.meshgrid(xv, yv, indexing="ij"),
                        z,
                        levels=[0.5],
                        colors="black",
                        linestyles=style,
                        linewidths=1.2,
                    )
        drawn[str(mode)] = {}
        if "theory_failed" in ds and len(xv) > 1 and len(yv) > 1:
            drawn[str(mode)] = theory_contours(
                ax,
                np.meshgrid(xv, yv, indexing="ij"),
                lambda v, m=mode: ds[v].sel(mode=m).transpose(xname, yname).values,
            )
        if overlay is not None and (line := overlay(ds, mode)) is not None:
            ax.plot(*line, color="#009E73", lw=2, label="theory")
        ax.set_title(mode_title(mode), fontsize=10)
        if note := panel_note(ds, mode):
            ax.text(
                0.5,
                0.04,
                "\n".join(textwrap.wrap(note, 48)),
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                fontsize=7,
                color="0.25",
                bbox=dict(facecolor="white", alpha=0.8, edgecolor="0.7", lw=0.5),
            )
        if xlog:
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
    for ax in bottom_panels(panels, len(modes)):
        ax.set_xlabel(LABELS.get(xname, xname), fontsize=8)
    for ax in panels[:, 0]:
        ax.set_ylabel(LABELS.get(yname, yname), fontsize=8)
    handles = [Patch(facecolor=c, edgecolor="0.5", label=r) for r, c in zip(REGIMES, COLOURS)]
    handles += [
        plt.Line2D([], [], color="black", ls="-", label="P(fail) = 0.5"),
        plt.Line2D([], [], color="black", ls="--", label="P(silent) = 0.5"),
    ]
    if "theory_failed" in ds:
        handles += theory_handles()
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    sc_name = ds.attrs.get("scenario_name", "")
    fig.suptitle(
        (title or f"Silent failures: {sc_name} (alpha = {ds.attrs['alpha']}, {ds.attrs['seeds']} seeds per cell)")
        + "\n"
        + "\n".join(textwrap.wrap(setting_caption(ds), 120)),
        fontsize=9,
    )
    return _save(fig, out, overlay=drawn)


#: Colour and line style of the theory's predicted boundaries on the phase panels.
THEORY_STYLES = {"failure": ("#009E73", "-."), "silence": ("#CC79A7", ":")}


def theory_contours(ax, grid: list[np.ndarray], values: Callable[[str], np.ndarray]) -> dict[str, list]:
    """Draw the theory's predicted failure and silence boundaries (the 1/2 contour of
    ``theory_failed`` and ``theory_silent``) on a panel.

    Args:
        ax: the panel.
        grid: the (x, y) meshgrid of the cell centres.
        values: variable name -> its (x, y) array for the panel's mode.

    Returns:
        ``{"failure": segments, "silence": segments}``, each segment a list of [x, y] (empty where the
        prediction does not change over the panel).
    """
    drawn: dict[str, list] = {}
    for var, key in (("theory_failed", "failure"), ("theory_silent", "silence")):
        z = values(var).astype(float)
        drawn[key] = []
        if z.max() > 0.5 > z.min():
            colour, style = THEORY_STYLES[key]
            cs = ax.contour(*grid, z, levels=[0.5], colors=colour, linestyles=style, linewidths=1.6)
            drawn[key] = [seg.tolist() for seg in cs.allsegs[0]]
    return drawn


def theory_handles() -> list:
    """Legend entries of the theory's predicted boundaries (:data:`THEORY_STYLES`).

    Returns:
        One ``Line2D`` handle per boundary, in the colour and line style it is drawn in.
    """
    import matplotlib.pyplot as plt

    return [
        plt.Line2D([], [], color=c, ls=st, lw=1.6, label=f"predicted {k} boundary")
        for k, (c, st) in THEORY_STYLES.items()
    ]


def setting_caption(ds: xr.Dataset) -> str:
    """The constraint set in force and the verdict rules of a sweep, for its figure.

    Args:
        ds: a sweep.

    Returns:
        The caption text.
    """
    from .constraints import scenario_constraints
    from .report import detection_window, persistence_text
    from .sim.scenario import scenario_from_dict

    sc = scenario_from_dict(json.loads(ds.attrs["scenario"]))
    return (
        f"constraints: {', '.join(scenario_constraints(sc)) or 'none'}; detection window "
        f"{detection_window(ds.attrs['lead'], ds.attrs['grace'])}; failure = {persistence_text(sc.thresholds)}"
    )


def _save(fig, out: str | Path, overlay: dict | None = None) -> list[Path]:
    """Write ``out``.pdf and ``out``.png (and, given, the drawn overlay curves as
    ``out``.overlay.json) and close the figure; returns the paths."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("pdf", "png"):
        p = out.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150)
        paths.append(p)
    plt.close(fig)
    if overlay is not None:
        side = out.with_suffix(".overlay.json")
        side.write_text(json.dumps(overlay))
        paths.append(side)
    return paths


QUANTITY_LABELS = {"fail": "P(fail)", "silent": "P(silent failure)"}


def boundary_figure(
    est: xr.Dataset, out: str | Path, *, quantity: str = "fail", title: str | None = None
) -> list[Path]:
    """Six panels (one per mode in ``est``) of the empirical rate per cell (k/n, sequential
    cividis scale) with the posterior median boundary (P = 1/2) and its 90% credible band
    from :func:`silentfail.sim.estimate.estimate`; a flagged fit says so in its panel title.
    Writes ``out``.pdf and ``out``.png.

    Args:
        est: a boundary estimate (:func:`silentfail.sim.estimate.estimate`).
        out: the path without suffix.
        quantity: ``fail`` or ``silent``.
        title: the figure's title.

    Returns:
        The PDF and PNG paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xname, yname = est.attrs["x_axis"], est.attrs["y_axis"]
    xv, yv = est[xname].values.astype(float), est[yname].values.astype(float)
    xlog, ylog = is_log_axis(xv), is_log_axis(yv)
    X, Y = np.meshgrid(_edges(xv, xlog), _edges(yv, ylog), indexing="ij")
    modes = list(est["mode"].values)
    fig, panels = mode_panels(len(modes), sharex=True, sharey=True)
    mesh = None
    for ax, mode in zip(panels.flat, modes):
        e = est.sel(mode=mode, quantity=quantity)
        mesh = ax.pcolormesh(
            X, Y, e["empirical"].transpose(xname, yname).values, cmap="cividis", vmin=0, vmax=1, shading="flat"
        )
        xf = est["x_fine"].values
        lo, med, hi = (e[v].values for v in ("boundary_q05", "boundary_median", "boundary_q95"))
        ax.fill_between(xf, lo, hi, color="#E69F00", alpha=0.45, lw=0, label="90% credible band")
        ax.plot(xf, med, color="#D55E00", lw=2, label="posterior median boundary")
        ax.set_xlim(X.min(), X.max())
        ax.set_ylim(Y.min(), Y.max())
        flag = " [flagged]" if bool(e["flagged"]) else ""
        ax.set_title(mode_title(mode) + flag, fontsize=10)
        if xlog:
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
    low = bottom_panels(panels, len(modes))
    low[len(low) // 2].set_xlabel(LABELS.get(xname, xname), fontsize=9)  # one label, centred (long labels overlap)
    fig.supylabel(LABELS.get(yname, yname), fontsize=9)
    if mesh is not None:
        fig.colorbar(mesh, ax=panels, shrink=0.8, label=f"empirical {QUANTITY_LABELS.get(quantity, quantity)}")
    handles = [
        plt.Line2D([], [], color="#D55E00", lw=2, label="posterior median boundary (P = 1/2)"),
        matplotlib.patches.Patch(facecolor="#E69F00", alpha=0.45, label="90% credible band"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        title
        or f"{QUANTITY_LABELS.get(quantity, quantity)}: posterior boundary ({est.attrs.get('model', '')} model, "
        f"{est.attrs.get('chains', '?')} chains)",
        fontsize=11,
    )
    return _save(fig, out)


OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _arm_positions(ds: xr.Dataset) -> tuple[np.ndarray, list[str] | None, bool]:
    """x positions of a claim's arms: the numbers themselves, or 0..n-1 with labels."""
    x = ds["x"].values
    if x.dtype.kind in "fiu":
        return x.astype(float), None, False
    return np.arange(len(x), dtype=float), [str(v) for v in x], True


def literature_figure(results: dict[str, xr.Dataset], out: str | Path, *, columns: int = 4) -> list[Path]:
    """One panel per literature claim (sim/literature.py): the claim's quantity per arm,
    mean and 2 SE over seeds; the title says whether the claim holds in the stylized
    world. Writes ``out``.pdf and .png.

    Args:
        results: ``{claim key: result Dataset}``.
        out: the path without suffix.
        columns: panels per row.

    Returns:
        The PDF and PNG paths.
    """
    import matplotlib

    from .sim.literature import holds

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    rows = -(-n // columns)
    fig, panels = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.3 * rows), constrained_layout=True, squeeze=False
    )
    for ax, ds in zip(panels.flat, results.values()):
        q = ds.attrs["quantity"]
        x, labels, categorical = _arm_positions(ds)
        m, s = ds["mean"].sel(quantity=q).values, ds["se"].sel(quantity=q).values
        colour = {True: OKABE_ITO[0], False: OKABE_ITO[1], None: "0.5"}[holds(ds)]
        ax.errorbar(
            x, m, yerr=2 * s, color=colour, marker="o", ms=4, lw=1.5, capsize=2, ls="none" if categorical else "-"
        )
        if labels is not None:
            ax.set_xticks(x, labels, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(ds.attrs["axis_label"], fontsize=7)
        ax.set_ylabel(ds.attrs["quantity_label"], fontsize=7)
        ax.set_title(
            f"{ds.attrs['title']}\n{'holds' if ds.attrs['holds'] else 'does not hold'}", fontsize=8, color=colour
        )
        ax.grid(alpha=0.3, lw=0.5)
    for ax in list(panels.flat)[n:]:
        ax.set_visible(False)
    return _save(fig, out)


def switching_figure(ds: xr.Dataset, out: str | Path) -> list[Path]:
    """The adaptive-switching claim's effect on every mode: the late mode metric of each
    schedule (mean and 2 SE over seeds), one group of bars per mode.

    Args:
        ds: the adaptive-switching claim's result.
        out: the path without suffix.

    Returns:
        The PDF and PNG paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [str(v) for v in ds["x"].values]
    qs = [f"mode:{m}" for m in MODES]
    fig, ax = plt.subplots(figsize=(6.5, 2.8), constrained_layout=True)
    width = 0.8 / len(arms)
    base = np.arange(len(MODES))
    for i, arm in enumerate(arms):
        m = ds["mean"].sel(quantity=qs).isel(arm=i).values
        s = ds["se"].sel(quantity=qs).isel(arm=i).values
        ax.bar(base + (i - (len(arms) - 1) / 2) * width, m, width, yerr=2 * s, color=OKABE_ITO[i], label=arm, capsize=2)
    ax.set_xticks(base, [TITLES[m].replace(" ", "\n", 1) for m in MODES], fontsize=7)
    ax.set_ylabel("late mode metric", fontsize=8)
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(title="schedule", fontsize=7, title_fontsize=7, frameon=False)
    return _save(fig, out)


#: Verdict colours of the influence figure (Okabe-Ito).
VERDICT_COLOURS = {
    "supported": "#009E73",
    "not_supported": "#999999",
    "reversed": "#D55E00",
    "untestable": "#E69F00",
}


def influence_figure(ds: xr.Dataset, out: str | Path, *, extra: int = 3) -> list[Path]:
    """The paper's influence graph with each of its edges drawn by its measured effect
    through the source (width ~ |through| / max, colour = verdict), and the ``extra``
    strongest supported pairs the paper does not draw, dashed.

    Args:
        ds: :func:`silentfail.sim.influence.influences`' Dataset.
        out: the output path (its suffix is replaced by .pdf and .png).
        extra: how many of the strongest supported non-paper pairs to draw.

    Returns:
        The written paths.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    from .sim.registry import BUILTIN_MODES

    angle = np.pi / 2 - 2 * np.pi * np.arange(len(BUILTIN_MODES)) / len(BUILTIN_MODES)
    pos = {m: (np.cos(a), np.sin(a)) for m, a in zip(BUILTIN_MODES, angle)}
    rows = [{k: ds[k].values[i].item() for k in ds.data_vars} for i in range(ds.sizes["pair"])]
    paper = [r for r in rows if r["strength"] != "none"]
    others = sorted(
        (r for r in rows if r["strength"] == "none" and r["verdict"] == "supported"),
        key=lambda r: -abs(r["through"]),
    )[:extra]
    scale = max([abs(r["through"]) for r in paper + others if np.isfinite(r["through"])] + [1e-12])
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    for r in paper + others:
        (x0, y0), (x1, y1) = pos[r["source"]], pos[r["target"]]
        width = 1.0 + 3.5 * (abs(r["through"]) / scale if np.isfinite(r["through"]) else 0.0)
        style = {"primary": "-", "feedback": (0, (1, 1.2)), "none": (0, (5, 2.5))}[r["strength"]]
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0),
                (x1, y1),
                arrowstyle="-|>",
                mutation_scale=14,
                linewidth=width,
                linestyle=style,
                color=VERDICT_COLOURS[r["verdict"]],
                connectionstyle="arc3,rad=0.12",
                shrinkA=28,
                shrinkB=28,
            )
        )
    for m, (x, y) in pos.items():
        ax.text(
            x,
            y,
            textwrap.fill(mode_title(m), 14),
            ha="center",
            va="center",
            fontsize=8,
            bbox=dict(boxstyle="round", fc="white", ec="#333333"),
        )
    handles = [Line2D([], [], color=c, lw=3, label=v.replace("_", " ")) for v, c in VERDICT_COLOURS.items()]
    handles += [
        Line2D([], [], color="#333333", ls="-", label="paper: primary"),
        Line2D([], [], color="#333333", ls=(0, (1, 1.2)), label="paper: feedback"),
        Line2D([], [], color="#333333", ls=(0, (5, 2.5)), label="not in the paper (strongest supported)"),
    ]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=7, frameon=False)
    ax.set_xlim(-1.45, 1.45)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Influences between the modes: width = effect through the source", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def frontier_figure(ds: xr.Dataset, out: str | Path) -> list[Path]:
    """The privacy-silence frontier: one panel per mode of P(silent) over epsilon (log
    axis, labelled) x shift strength, with the simulated P(silent) = 1/2 contour, the
    theory's predicted failure and silence boundaries, the minimal detectable strength
    f_min(epsilon) of the best noised-mean channel (result 4) and the mu-GDP boundary;
    writes ``out``.pdf, ``out``.png and ``out``.overlay.json and returns their paths.

    Args:
        ds: a frontier sweep (:func:`silentfail.frontier.frontier`).
        out: the path without suffix.

    Returns:
        The PDF, PNG and overlay JSON paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .frontier import STRENGTH, Z

    order = np.argsort(ds["epsilon"].values)
    eps = ds["epsilon"].values[order]
    fs = ds[STRENGTH].values.astype(float)
    modes = list(ds["mode"].values)
    fig, panels = mode_panels(len(modes), width=3.5, height=3.0, extra=0.7, sharex=True, sharey=True)
    E, F = np.meshgrid(_edges(eps, True), _edges(fs, False), indexing="ij")
    gdp = float(ds.attrs["gdp_epsilon"])
    drawn: dict[str, dict] = {}
    mesh = None
    for ax, mode in zip(panels.flat, modes):
        sel = lambda v, m=mode: ds[v].sel(mode=m).transpose(Z, STRENGTH).values[order]  # noqa: E731
        ps = sel("p_silent")
        mesh = ax.pcolormesh(E, F, ps, cmap="Oranges", vmin=0, vmax=1, shading="flat")
        grid = np.meshgrid(eps, fs, indexing="ij")
        if ps.max() >= 0.5 > ps.min():
            ax.contour(*grid, ps, levels=[0.5], colors="black", linestyles="--", linewidths=1.2)
        rec = theory_contours(ax, grid, sel)
        fmin = ds["f_min"].sel(mode=mode).values[order]
        ok = np.isfinite(fmin)
        if ok.any():
            ax.plot(eps[ok], fmin[ok], color="#0072B2", lw=1.8, marker="o", ms=3)
        rec["f_min"] = [[float(e), float(f)] for e, f in zip(eps[ok], fmin[ok])]
        if np.isfinite(gdp):
            ax.axvline(gdp, color="0.35", ls=(0, (5, 2, 1, 2)), lw=1.2)
        drawn[str(mode)] = rec
        ax.set_xscale("log")
        ax.set_title(mode_title(mode), fontsize=10)
    for ax in bottom_panels(panels, len(modes)):
        ax.set_xlabel(r"privacy budget $\varepsilon$ (log; smaller = more private)", fontsize=8)
    for ax in panels[:, 0]:
        ax.set_ylabel(LABELS.get(STRENGTH, STRENGTH), fontsize=8)
    handles = [
        plt.Line2D([], [], color="black", ls="--", label="P(silent) = 0.5"),
        *theory_handles(),
        plt.Line2D(
            [],
            [],
            color="#0072B2",
            lw=1.8,
            marker="o",
            ms=3,
            label=r"$f_{\min}(\varepsilon)$: minimal detectable shift",
        ),
        plt.Line2D(
            [], [], color="0.35", ls=(0, (5, 2, 1, 2)), label=r"$\mu$-GDP: no test detects one client left of it"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if mesh is not None:
        fig.colorbar(mesh, ax=panels.ravel().tolist(), shrink=0.6, label="P(silent)")
    fig.suptitle(
        f"Privacy-silence frontier: {ds.attrs.get('scenario_name', '')} (alpha = {ds.attrs['alpha']}, "
        f"{ds.attrs['seeds']} seeds per cell)\n" + "\n".join(textwrap.wrap(setting_caption(ds), 120)),
        fontsize=9,
    )
    return _save(fig, out, overlay=drawn)


def transfer_figure(claims: xr.Dataset, phase: xr.Dataset | None, out: str | Path) -> list[Path]:
    """The transfer table as a figure: left, each claim's effect (signed so that the claim
    predicts > 0) with 2 SE under each client model (hollow where the claim does not hold,
    absent where it does not apply); right, per mode, the share of the coarse phase grid's
    cells in which each model's regime is the linear readout's.

    Args:
        claims: ``sim.transfer.transfer_claims``' Dataset.
        phase: ``sim.transfer.transfer_phase``' Dataset, or None.
        out: the output stem.

    Returns:
        The written paths.
    """
    import matplotlib.pyplot as plt

    kinds = [str(k) for k in claims["model"].values]
    n = claims.sizes["claim"]
    ncols = 1 if phase is None else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 0.42 * n + 1.4), squeeze=False)
    ax = axes[0, 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        y = np.arange(n) + (j - (len(kinds) - 1) / 2) * step
        e, s, h = (claims[v].values[:, j] for v in ("effect", "effect_se", "holds"))
        ok = ~np.isnan(e)
        ax.errorbar(e[ok], y[ok], xerr=2 * s[ok], fmt="none", ecolor=colors[j], lw=1)
        for held, face in ((1.0, colors[j]), (0.0, "none")):
            sel = ok & (h == held)
            ax.scatter(
                e[sel], y[sel], marker="o", s=22, facecolors=face, edgecolors=colors[j], label=kind if held else None
            )
    ax.axvline(0.0, color="grey", lw=0.6)
    ax.set_yticks(np.arange(n), [str(t) for t in claims["title"].values], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("effect (claim predicts > 0), ± 2 SE; hollow: does not hold", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    if phase is not None:
        ax2 = axes[0, 1]
        modes = [str(m) for m in phase["mode"].values]
        others = [str(k) for k in phase["model"].values][1:]
        x = np.arange(len(modes))
        width = 0.8 / max(len(others), 1)
        for j, kind in enumerate(others):
            ax2.bar(
                x + (j - (len(others) - 1) / 2) * width,
                phase["agreement"].sel(model=kind).values,
                width,
                color=colors[kinds.index(kind) if kind in kinds else j + 1],
                label=kind,
            )
        ax2.set_xticks(x, [mode_title(m) for m in modes], rotation=40, ha="right", fontsize=7)
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("cells in the linear readout's regime", fontsize=8)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
