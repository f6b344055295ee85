"""``silentfail paper``: regenerate every figure, table and number of the reference paper
from code and build the PDF with latexmk.

What it writes into the output folder (``paper/`` by default):

* ``generated/taxonomy.pdf`` and ``generated/taxonomy_table.tex`` (from ``taxonomy``);
* ``generated/theorems.tex`` (from ``proofs``, sympy);
* ``generated/sweep.nc``, ``generated/phase.pdf`` (the phase diagram of the ``phase``
  preset) and ``generated/estimate.nc``, ``generated/boundary_silent.pdf`` (the numpyro
  boundary posteriors);
* ``generated/claims/*.nc``, ``generated/claims.pdf``, ``generated/switching.pdf`` and
  ``generated/literature_table.tex`` (sim/literature.py);
* ``generated/numbers.tex``: every number the text quotes, as ``\\newcommand`` macros
  computed by :func:`numbers` from the artifacts above (the text types none by hand);
* ``references.bib`` from the BibTeX the code carries;
* ``main.pdf`` (latexmk, pdflatex + bibtex).

``quick=True`` shrinks the phase grid, the seeds and the NUTS run so that CI builds the
paper in minutes; the literature claims run at their own (already small) sizes.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .sim.scenario import MODES, Scenario

#: The TeX toolchain, from Debian's packages (see README, "Building the paper").
TEX_PACKAGES = (
    "latexmk",
    "texlive-latex-base",
    "texlive-latex-recommended",
    "texlive-fonts-recommended",
    "poppler-utils",
)
SOURCE = Path(__file__).resolve().parents[1] / "paper"


@dataclass(frozen=True)
class Settings:
    """Sizes of one build."""

    lam: tuple[float, ...]
    strength: tuple[float, ...]
    seeds: int
    chains: int
    warmup: int
    samples: int
    influence_seeds: int

    @property
    def axes(self) -> dict[str, list[float]]:
        """The phase sweep's axes: personalization.lam and shifts.strength values."""
        return {"personalization.lam": list(self.lam), "shifts.strength": list(self.strength)}


FULL = Settings(
    lam=tuple(np.logspace(-2, 1, 8).round(6)),
    strength=tuple(np.linspace(0, 1, 8).round(6)),
    seeds=8,
    chains=4,
    warmup=1000,
    samples=1000,
    influence_seeds=16,
)
QUICK = Settings(
    lam=tuple(np.logspace(-2, 1, 4).round(6)),
    strength=tuple(np.linspace(0, 1, 4).round(6)),
    seeds=4,
    chains=2,
    warmup=300,
    samples=300,
    influence_seeds=4,
)


class PaperError(RuntimeError):
    """The paper could not be built (missing toolchain, LaTeX error)."""


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def _f(v: float, digits: int = 3) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if not math.isfinite(v):
        return r"\infty" if v > 0 else "--"
    return f"{v:.{digits}f}"


def phase_scenario() -> Scenario:
    """The scenario of the paper's phase diagram (the 'phase' preset).

    Returns:
        The Scenario.
    """
    from .sim.scenario import preset

    return preset("phase")


def numbers(
    sc: Scenario,
    sweep: xr.Dataset,
    est: xr.Dataset,
    claims: dict[str, xr.Dataset],
    influence: xr.Dataset | None = None,
) -> dict[str, str]:
    """Every number the paper quotes, by macro name, formatted for TeX.

    A pure function of the scenario, the saved sweep and estimate, and the claim
    results: the build writes these to numbers.tex, and a test recomputes them from the
    files the build saved and from a fresh run of the claims.

    Args:
        sc: the phase scenario.
        sweep: the phase sweep.
        est: its boundary estimate.
        claims: the literature results.
        influence: the influence tests (:func:`silentfail.sim.influence.influences`).

    Returns:
        ``{macro name: TeX text}``.
    """
    from .constraints import scenario_constraints
    from .sim.privacy import account, max_participation
    from .taxonomy import builtin_taxonomy

    f = sc.federation
    q = max_participation(sc)  # the accountant's q: the largest q_c (participation disparity)
    tax = builtin_taxonomy()
    out = {
        "TaxNodes": _f(len(tax.nodes())),
        "TaxEdges": _f(len(tax.edges())),
        "PhaseClients": _f(sc.population.num_clients),
        "PhaseRounds": _f(f.rounds),
        "PhaseD": _f(sc.world.d),
        "PhaseK": _f(sc.personalization.K),
        "PhaseEta": _f(sc.personalization.eta, 2),
        "PhaseZ": _f(f.noise_multiplier, 2),
        "PhaseClip": _f(f.clip, 2),
        "PhaseQ": _f(f.participation, 2),
        "PhaseQMax": _f(q, 2),
        "PhaseDisparity": _f(f.participation_disparity, 2),
        "PhaseDelta": f"10^{{{int(round(math.log10(f.dp_delta)))}}}",
        "PhaseEpsilon": _f(account(sc, q).epsilon, 2),
        "PhaseEpsilonPLD": _f(account(sc, q, "pld").epsilon, 2),
        "PhaseReleases": _f(len(account(sc, q).releases)),
        "PhaseConstraints": _f(len(scenario_constraints(sc))),
        "PhaseAlpha": _f(float(sweep.attrs["alpha"]), 2),
        "PhaseGrace": _f(int(sweep.attrs["grace"])),
        "PhaseLead": _f(int(sweep.attrs["lead"])),
        "PhasePersist": _f(sc.thresholds.persist),
        "PhaseFairnessTolerance": _f(sc.thresholds.fairness_mean_tolerance, 2),
        "PhaseSeeds": _f(int(sweep.attrs["seeds"])),
        "PhaseCalSeeds": _f(int(sweep.attrs["calibration_seeds"])),
        "PhaseGridX": _f(sweep.sizes["personalization.lam"]),
        "PhaseGridY": _f(sweep.sizes["shifts.strength"]),
        "PhaseLamMin": _f(float(sweep["personalization.lam"].min()), 2),
        "PhaseLamMax": _f(float(sweep["personalization.lam"].max()), 0),
        "PhaseMaxFalseAlarm": _f(float(np.nanmax(sweep["false_alarm_rate"].values)), 3),
        "PhaseMeanFalseAlarm": _f(float(np.nanmean(sweep["false_alarm_rate"].values)), 3),
        "PhaseHeldOut": _f(
            int(sweep.attrs["calibration_seeds"]) - int(sweep.attrs["calibration_seeds"]) // 2
        ),  # detectors.calibrate
        "PhaseFalseAlarmSE": _f(float(np.nanmean(sweep["false_alarm_se"].values)), 3),
    }
    cells = sweep["p_silent"].notnull().sum(("personalization.lam", "shifts.strength"))
    for m in MODES:
        silent = (sweep["p_silent"].sel(mode=m) >= 0.5).sum().item()
        failing = (sweep["p_fail"].sel(mode=m) >= 0.5).sum().item()
        out[f"SilentCells{_camel(m)}"] = _f(int(silent))
        out[f"FailCells{_camel(m)}"] = _f(int(failing))
    out["PhaseCells"] = _f(int(cells.max()))
    cm = silence_map(tax)
    out["StructSilentFederated"] = _f(sum(cm.silent(m, "federated") for m in cm.modes))
    out["StructFederatedMaxSurvivors"] = _f(max(len(cm.surviving(m, "federated")) for m in cm.modes))
    out["StructSilentAll"] = _f(sum(cm.silent(m, "all") for m in cm.modes))
    out["ConstraintSets"] = _f(len(cm.constraint_sets))
    from .sim.estimate import ESS_MIN, RHAT_MAX

    out["RhatMax"] = _f(RHAT_MAX, 2)
    out["EssMin"] = _f(int(ESS_MIN))
    out["BandLevel"] = _f(90)  # the band of estimate(): posterior 5% and 95% quantiles
    out["EstFits"] = _f(int(est["flagged"].size))
    out["EstFlagged"] = _f(int(est["flagged"].sum()))
    out["EstNoTransition"] = _f(int(np.char.startswith(est["status"].values.astype(str), "no transition").sum()))
    out["EstChains"] = _f(int(est.attrs["chains"]))
    out["EstDraws"] = _f(int(est.attrs["draws"]))
    out["LitClaims"] = _f(len(claims))
    out["LitHold"] = _f(sum(int(ds.attrs["holds"]) for ds in claims.values()))
    for key, ds in claims.items():
        c = _camel(key)
        q = ds.attrs["quantity"]
        m = ds["mean"].sel(quantity=q).values
        out[f"Lit{c}Effect"] = _f(float(ds.attrs["effect"]))
        out[f"Lit{c}SE"] = _f(float(ds.attrs["effect_se"]))
        out[f"Lit{c}First"] = _f(float(m[0]))
        out[f"Lit{c}Last"] = _f(float(m[-1]))
        out[f"Lit{c}Seeds"] = _f(ds.sizes["seed"])
    if "adaptive_switching" in claims:
        ds = claims["adaptive_switching"]
        mis = ds["mean"].sel(quantity="mode:adaptation_misalignment").values
        out["SwitchMisalignNever"] = _f(float(mis[0]))
        out["SwitchMisalignAdaptive"] = _f(float(mis[-1]))
        out["SwitchPublicRounds"] = _f(float(ds["mean"].sel(quantity="public_rounds").values[-1]), 1)
    if "silent_under_privacy" in claims:
        eps = claims["silent_under_privacy"]["epsilon"].values
        out["SilentClaimEpsilon"] = _f(float(eps[-1]), 2)
    if influence is not None:
        out.update(influence_numbers(influence))
    if "theory_failed" in sweep:
        out.update(theory_numbers(sweep))
    return out


def theory_numbers(ds: xr.Dataset) -> dict[str, str]:
    """The macros of the theory-against-simulation paragraph: per mode the share of cells
    whose predicted regime is the simulated majority regime (percent) and the failure
    boundary's distance in cells, the smallest share, and the population draws.

    Args:
        ds: the phase sweep with its theory variables.

    Returns:
        ``{macro name: TeX text}``.
    """
    from .sim.theory import agreement

    agree = agreement(ds)
    out = {"TheoryDraws": _f(int(ds.attrs["theory_draws"]))}
    for m, a in agree.items():
        out[f"TheoryAgree{_camel(m)}"] = _f(int(round(100 * a.share)))
        out[f"TheoryFailDist{_camel(m)}"] = _f(a.failure_distance)
        out[f"TheoryFailAgree{_camel(m)}"] = _f(int(round(100 * a.failure_share)))
    out["TheoryAgreeMin"] = _f(int(round(100 * min(a.share for a in agree.values()))))
    out["TheoryAgreeAtLeastNinety"] = _f(sum(a.share >= 0.9 for a in agree.values()))
    return out


def theory_table_tex(ds: xr.Dataset) -> str:
    """The theory-against-simulation table (booktabs): per mode the share of cells whose
    predicted regime is the simulated majority regime, the same for failure alone, and
    the distances of the predicted failure and silence boundaries in grid cells.

    Args:
        ds: the phase sweep with its theory variables.

    Returns:
        The table's LaTeX.
    """
    from .figures import mode_title
    from .sim.theory import theory_frame

    rows = [
        f"{mode_title(r['mode'])} & {100 * r['agreement']:.0f}\\% & {100 * r['failure_agreement']:.0f}\\% & "
        f"{r['failure_distance']} & {r['silence_distance']} \\\\"
        for r in theory_frame(ds)
    ]
    return "\n".join(
        [
            "% generated by `silentfail paper`; do not edit",
            "\\begin{table}[t]",
            "\\centering\\small",
            "\\caption{Theory against simulation on the phase diagram: share of the cells whose predicted regime "
            "(population limit) is the simulated majority regime, the same for failure alone, and the largest "
            "distance in grid cells from a disagreeing cell to the predicted boundary.}",
            "\\label{tab:theory}",
            "\\begin{tabular}{@{}l r r r r@{}}",
            "\\toprule",
            "Mode & Regime & Failure & Fail.\\ dist. & Sil.\\ dist. \\\\",
            "\\midrule",
            *rows,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    )


def influence_numbers(ds: xr.Dataset) -> dict[str, str]:
    """The influence section's macros: how many of the paper's edges each verdict got,
    how many pairs the paper does not draw are supported, the seeds and the strength.

    Args:
        ds: the influence tests.

    Returns:
        ``{macro: text}``.
    """
    strength = ds["strength"].values.astype(str)
    verdict = ds["verdict"].values.astype(str)
    paper = strength != "none"
    out = {
        f"InfluencePaper{_camel(v)}": _f(int(np.sum(paper & (verdict == v))))
        for v in ("supported", "not_supported", "reversed", "untestable")
    }
    out["InfluencePaperEdges"] = _f(int(paper.sum()))
    out["InfluenceOtherSupported"] = _f(int(np.sum(~paper & (verdict == "supported"))))
    out["InfluencePairs"] = _f(int(ds.sizes["pair"]))
    out["InfluenceSeeds"] = _f(int(ds.attrs["seeds"]))
    out["InfluenceDelta"] = _f(float(ds.attrs["delta"]), 2)
    return out


def influence_table_tex(ds: xr.Dataset) -> str:
    """The influence table (booktabs): the paper's nine edges, then the pairs the paper
    does not draw that the tests support; effect through the source and total effect
    with their SE, mediated share, precedence and verdict.

    Args:
        ds: the influence tests.

    Returns:
        The table's LaTeX.
    """
    from .figures import mode_title

    def pm(m: float, s: float) -> str:
        return "--" if not math.isfinite(m) else f"${m:.3f} \\pm {s:.3f}$"

    rows = []
    order = [i for i in range(ds.sizes["pair"]) if str(ds["strength"].values[i]) != "none"]
    order += [
        i
        for i in range(ds.sizes["pair"])
        if str(ds["strength"].values[i]) == "none" and str(ds["verdict"].values[i]) == "supported"
    ]
    for i in order:
        v = {k: ds[k].values[i].item() for k in ds.data_vars}
        share = "--" if not math.isfinite(v["mediated_share"]) else f"{v['mediated_share']:.2f}"
        prec = "--" if not math.isfinite(v["precedence"]) else f"{v['precedence']:.2f}"
        rows.append(
            f"{mode_title(v['source'])} $\\to$ {mode_title(v['target'])} & {v['strength']} & "
            f"{pm(v['through'], v['through_se'])} & {pm(v['effect'], v['se'])} & {share} & {prec} & "
            f"{v['verdict'].replace('_', ' ')} \\\\"
        )
    return "\n".join(
        [
            "% generated by `silentfail paper`; do not edit",
            "\\begin{table*}[t]",
            "\\centering\\small",
            "\\caption{The influence edges tested by intervention: the paper's edges (primary, feedback), then the pairs "
            "the paper does not draw that the tests support. Effect through the source: the target's late-round "
            "response that blocking the source's mechanism removes; total: the response to the intervention; mean "
            "$\\pm$ SE over \\InfluenceSeeds\\ paired seeds. Precedence: share of runs failing in both modes where "
            "the source fails first.}",
            "\\label{tab:influences}",
            "\\begin{tabular}{@{}l l l l l l l@{}}",
            "\\toprule",
            "Edge & Paper & Through source & Total & Mediated & Precedence & Verdict \\\\",
            "\\midrule",
            *rows,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table*}",
            "",
        ]
    )


def numbers_tex(nums: dict[str, str]) -> str:
    """numbers.tex: one \\newcommand per quoted number, sorted by name.

    Args:
        nums: ``{macro: text}``.

    Returns:
        The file's text.
    """
    lines = ["% generated by `silentfail paper`: every number the text quotes; do not edit"]
    lines += [f"\\newcommand{{\\{k}}}{{{v}}}" for k, v in sorted(nums.items())]
    return "\n".join(lines) + "\n"


def read_numbers(path: str | Path) -> dict[str, str]:
    """The macros of a numbers.tex.

    Args:
        path: a numbers.tex.

    Returns:
        ``{macro: text}``.
    """
    pat = re.compile(r"^\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}$")
    out = {}
    for line in Path(path).read_text().splitlines():
        if m := pat.match(line):
            out[m.group(1)] = m.group(2)
    return out


def literature_table_tex(claims: dict[str, xr.Dataset]) -> str:
    """The claims table (booktabs): claim, source, quantity, effect (SE), holds.

    Args:
        claims: the literature results.

    Returns:
        The table's LaTeX.
    """
    rows = []
    for key, ds in claims.items():
        cites = ",".join(json.loads(ds.attrs["cites"]))
        c = _camel(key)
        rows.append(
            f"{ds.attrs['title']} \\citep{{{cites}}} & {_tex(ds.attrs['quantity_label'])} & "
            f"$\\Lit{c}First \\to \\Lit{c}Last$ & $\\Lit{c}Effect \\pm \\Lit{c}SE$ & "
            f"{'yes' if ds.attrs['holds'] else 'no'} \\\\"
        )
    return "\n".join(
        [
            "% generated by `silentfail paper`; do not edit",
            "\\begin{table*}[t]",
            "\\centering\\small",
            "\\caption{The literature's claims in the stylized world. Quantity from the first arm to the last (mean over "
            "seeds); the effect is signed so that the claim predicts a positive value; a claim holds when the effect "
            "exceeds its margin and three standard errors.}",
            "\\label{tab:claims}",
            "\\begin{tabular}{@{}l l l l l@{}}",
            "\\toprule",
            "Claim & Quantity & First $\\to$ last arm & Effect $\\pm$ SE & Holds \\\\",
            "\\midrule",
            *rows,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table*}",
            "",
        ]
    )


def silence_map(tax=None):
    """The structural silence map: the taxonomy's coverage matrix over its named
    constraint sets (none, each constraint alone, the federated set, with central DP,
    all), deployed models in scope.

    Args:
        tax: the taxonomy (default: the built-in one).

    Returns:
        The CoverageMatrix.
    """
    from .taxonomy import builtin_taxonomy, coverage_matrix

    return coverage_matrix(tax or builtin_taxonomy(), scope="deployed")


def silence_map_tex(cm) -> str:
    """The silence map as a table: per constraint set and mode, the number of detectors
    that survive (a star when some are degraded by noise or sampling) or 'silent'.

    Args:
        cm: the coverage matrix.

    Returns:
        The table's LaTeX.
    """
    from .taxonomy import builtin_taxonomy

    names = {n.id: n.name for n in builtin_taxonomy().nodes()}
    head = " & ".join(rf"\rotatebox{{60}}{{{_tex(names.get(m, m))}}}" for m in cm.modes)
    rows = []
    for s in cm.constraint_sets:
        cells = []
        for m in cm.modes:
            alive = [st for st in cm.cells[(m, s)] if st.survives]
            cells.append(
                r"\textbf{silent}"
                if not alive
                else f"{len(alive)}{'$^*$' if any(st.degraded_by for st in alive) else ''}"
            )
        rows.append(f"{_tex(names.get(s, s))} & {' & '.join(cells)} \\\\")
    return "\n".join(
        [
            "% generated by `silentfail paper` from the taxonomy; do not edit",
            "\\begin{table}[t]",
            "\\centering\\scriptsize",
            "\\setlength{\\tabcolsep}{3pt}",
            "\\caption{Structural silence map: for each constraint set (rows) and mode (columns), the number of "
            "detectors on the deployed models that survive; $^*$: some are degraded by noise or sampling; "
            "\\textbf{silent}: none survives.}",
            "\\label{tab:silence}",
            f"\\begin{{tabular}}{{@{{}}l{'c' * len(cm.modes)}@{{}}}}",
            "\\toprule",
            f"Constraint set & {head} \\\\",
            "\\midrule",
            *rows,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    )


def _tex(text: str) -> str:
    """Text for LaTeX: a label that already holds math ($...$) as it is, else escaped."""
    from .taxonomy.export import _tex as escape

    return text if "$" in text else escape(text)


def bibliography() -> str:
    """references.bib: every BibTeX entry the code carries (taxonomy references, the
    estimation methods, the package itself).

    Returns:
        The .bib text.
    """
    from .sim.estimate import BIBTEX as EST
    from .sim.influence import BIBTEX as INFLUENCE
    from .taxonomy.references import BIBTEX, PACKAGE_BIBTEX

    entries = dict(BIBTEX)
    for entry in re.split(r"\n(?=@)", (EST.strip() + "\n" + INFLUENCE.strip())):
        key = re.match(r"@\w+\{([^,]+),", entry.strip())
        if key is None:
            raise PaperError(f"unreadable BibTeX entry in silentfail.sim.estimate.BIBTEX: {entry[:60]!r}")
        entries.setdefault(key.group(1), entry.strip())
    return (
        "% generated by `silentfail paper` from the BibTeX in the code; do not edit\n\n"
        + "\n\n".join([PACKAGE_BIBTEX.strip()] + [entries[k].strip() for k in sorted(entries)])
        + "\n"
    )


def latexmk(folder: Path, main: str = "main.tex") -> Path:
    """Build ``folder/main`` with latexmk (pdflatex + bibtex); PaperError with the log's
    first error if it fails or the toolchain is missing.

    Args:
        folder: the folder holding the .tex.
        main: the main file's stem.

    Returns:
        The PDF's path.
    """
    exe = shutil.which("latexmk")
    if exe is None or shutil.which("pdflatex") is None:
        raise PaperError(
            f"latexmk and pdflatex are needed to build the paper: apt-get install {' '.join(TEX_PACKAGES)}"
        )
    proc = subprocess.run(
        [exe, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", main],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    pdf = folder / Path(main).with_suffix(".pdf")
    if proc.returncode != 0 or not pdf.exists():
        log = folder / Path(main).with_suffix(".log")
        text = log.read_text(errors="replace") if log.exists() else proc.stdout + proc.stderr
        errors = [line for line in text.splitlines() if line.startswith("!") or re.match(r"^\./[^:]+:\d+: ", line)]
        raise PaperError(f"latexmk failed in {folder}: {' | '.join(errors[:5]) or proc.stderr[-500:]}")
    return pdf


def build(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    source: str | Path | None = None,
    claims: dict[str, xr.Dataset] | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Regenerate everything under ``out`` (default: the source folder, paper/, or
    paper/build-quick/ with ``quick``, so a quick build never overwrites the full one's
    figures) and build the PDF; returns the output folder. ``claims`` reuses literature results
    already computed (else they are run here).

    Args:
        out: the output folder.
        quick: small sweeps and few seeds (the CI build).
        source: the paper's source folder (default: the checkout's paper/).
        claims: literature results computed elsewhere (reused).
        pdf: build the PDF with latexmk.
        progress: a progress printer.

    Returns:
        The output folder.

    Raises:
        PaperError: run outside the checkout, or a failed LaTeX build (its first error).
    """
    from . import figures
    from .proofs import latex_document
    from .sim import literature
    from .sim.estimate import estimate
    from .sim.sweep import sweep
    from .sim.trace import save_netcdf
    from .taxonomy import builtin_taxonomy
    from .taxonomy import export as tx_export

    say = progress or (lambda s: None)
    source = Path(source) if source is not None else SOURCE
    if not (source / "main.tex").is_file():
        raise PaperError(
            f"no main.tex in {str(source)!r}: the paper's source is in the repository checkout (paper/), not in the "
            "installed package; run from a clone of the repository or pass --source"
        )
    out = Path(out) if out is not None else (source / "build-quick" if quick else source)
    gen = out / "generated"
    gen.mkdir(parents=True, exist_ok=True)
    if out.resolve() != source.resolve():
        shutil.copy2(source / "main.tex", out / "main.tex")
    (out / "references.bib").write_text(bibliography())
    settings = QUICK if quick else FULL

    say("taxonomy")
    tax = builtin_taxonomy()
    tx_export.write(tax, "latex", gen / "taxonomy_table.tex")
    tx_export.write(tax, "pdf", gen / "taxonomy.pdf")
    (gen / "silence_map.tex").write_text(silence_map_tex(silence_map(tax)))
    say("theorems")
    (gen / "theorems.tex").write_text(latex_document())

    say("phase sweep")
    sc = phase_scenario()
    ds = sweep(sc, settings.axes, seeds=settings.seeds)
    save_netcdf(ds, gen / "sweep.nc")
    figures.phase_figure(ds, gen / "phase")  # with full settings, README's figure (silentfail phase's defaults)
    (gen / "theory_table.tex").write_text(theory_table_tex(ds))
    say("boundary posteriors")
    # the paper shows and quotes the P(silent) boundaries only
    est, _ = estimate(
        ds, quantities=("silent",), chains=settings.chains, warmup=settings.warmup, samples=settings.samples
    )
    est.attrs.update(warmup=settings.warmup)
    save_netcdf(est, gen / "estimate.nc")
    figures.boundary_figure(est, gen / "boundary_silent", quantity="silent", title=" ")

    say("literature claims")
    if claims is None:  # run (resumably) and saved claim by claim
        claims = literature.run_claims(folder=gen / "claims")
    else:
        literature.save_claims(claims, gen / "claims")
    figures.literature_figure(claims, gen / "claims")
    if "adaptive_switching" in claims:
        figures.switching_figure(claims["adaptive_switching"], gen / "switching")
    (gen / "literature_table.tex").write_text(literature_table_tex(claims))

    say("influence tests")
    from .sim.influence import influences, reduced
    from .sim.scenario import preset

    infl = influences(reduced(preset("default")) if quick else preset("default"), seeds=settings.influence_seeds)
    save_netcdf(infl, gen / "influences.nc")
    figures.influence_figure(infl, gen / "influences")
    (gen / "influence_table.tex").write_text(influence_table_tex(infl))

    say("numbers")
    (gen / "numbers.tex").write_text(numbers_tex(numbers(sc, ds, est, claims, infl)))
    if pdf:
        say("latexmk")
        latexmk(out)
    return out


def numbers_from_disk(out: str | Path, claims: dict[str, xr.Dataset] | None = None) -> dict[str, str]:
    """:func:`numbers` recomputed from the files a build saved (and, if given, from
    claim results computed afresh).

    Args:
        out: a build's output folder.
        claims: claim results to use instead of the saved ones.

    Returns:
        ``{macro: text}``.
    """
    from .sim import literature

    gen = Path(out) / "generated"
    ds = xr.load_dataset(gen / "sweep.nc", engine="h5netcdf")
    est = xr.load_dataset(gen / "estimate.nc", engine="h5netcdf")
    claims = claims if claims is not None else literature.load_claims(gen / "claims")
    infl = xr.load_dataset(gen / "influences.nc", engine="h5netcdf")
    return numbers(phase_scenario(), ds, est, claims, infl)
