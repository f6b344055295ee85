"""Estimation with honest uncertainty (paper/main.tex, Estimated boundaries): where each failure occurs
(phase boundaries), when it starts (onset) and how sure we are.

**Phase boundary** (:func:`fit_boundary`, :func:`estimate`). For one mode, the sweep gives
per grid cell (x_i, y_j) the number k_ij of valid seeds that failed (or failed silently)
out of n_ij. Axes are mapped to [0, 1] (log10 first on a log-spaced axis). Two numpyro
models, both with the binomial likelihood k_ij ~ Bin(n_ij, p_ij):

* ``probit`` (a probit, or ``link="logit"`` logistic, boundary model with a spline
  boundary curve): p_ij = Phi(d s (y_j - b(x_i))), with the boundary's support the axis
  domain widened by half its width on each side,
  b(x) = -1/2 + 2 sigmoid(eta(x)) in (-1/2, 3/2), eta(x) = sum_l w_l B_l(x) a cubic
  B-spline with a random-walk prior on its coefficients (w_1 ~ N(0, 1.1^2), so that b
  is about N(1/2, 1/2^2) at the start; w_l - w_{l-1} ~ N(0, (2 smooth)^2), 2 smooth being
  smooth in b's units at the centre), slope log s ~ N(log 10, 1), d = +-1 the side on
  which failures lie (read off the data). Every coefficient is a standard normal scaled
  (non-centred), and the bounded support keeps a boundary the data put beyond the grid
  from drifting (the divergences of an unbounded one). The reported boundary is
  restricted to the axis domain: its quantiles are those of the draws inside it, and it
  is NaN ("outside the grid") where the posterior puts less than half its mass inside.
* ``gp`` (a Gaussian-process classifier): p = Phi(f), f = c + g, g ~ GP(0, k_SE) with one
  length scale per axis, in the Hilbert-space approximation (Riutort-Mayol et al. 2023;
  6 x 6 basis functions, box [-1, 1]^2 around the unit square centred at 0); the boundary is the first crossing of f = 0
  along y at each x (NaN where the posterior draw has none in the grid).

NUTS (several chains, vectorized) with R-hat, bulk and tail ESS from arviz and the count
of divergent transitions; a fit with R-hat > 1.01, any divergence or a bulk/tail ESS
below 100 is *flagged* in the output with the reason, never hidden.

**Onset** (:func:`fit_onset`). A trajectory y_0..y_{T-1} (a metric or an observable) is
piecewise: ``level`` y_t = b_0 + b_1 1[t >= tau] + e_t or ``hinge``
y_t = b_0 + b_1 t/T + b_2 (t - tau)_+/T + e_t, e_t ~ N(0, sigma^2), b ~ N(0, V_0), tau
uniform on {1, .., T-1}, log sigma uniform on a grid. Given (tau, sigma) the model is
linear-Gaussian, so b is integrated exactly and the posterior over (tau, sigma) is exact on
the sigma grid: p(tau | y) needs no sampling. The failure round T_f (first round at which
the mean path crosses a threshold) is a function of (tau, b) and its posterior is drawn
exactly (tau, sigma from the grid posterior, b from its Gaussian conditional).
:func:`fit_onset_nuts` is the same model in numpyro with tau marginalized by log-sum-exp
(NUTS over b and sigma), the cross-check of the exact computation.

**Detection from observables only** is :mod:`changepoint` (the ``bayesian_changepoint``
detector).

References (BibTeX in :data:`BIBTEX`):
    Albert, Chib (1993), Bayesian analysis of binary and polychotomous response data, JASA.
    Eilers, Marx (1996), Flexible smoothing with B-splines and penalties, Stat. Sci.
    Rasmussen, Williams (2006), Gaussian Processes for Machine Learning, ch. 3.
    Riutort-Mayol, Buerkner, Andersen, Solin, Vehtari (2023), Practical Hilbert space
    approximate Bayesian Gaussian processes for probabilistic programming, Stat. Comput. 33.
    Vehtari, Gelman, Simpson, Carpenter, Buerkner (2021), Rank-normalization, folding, and
    localization: an improved R-hat, Bayesian Analysis 16(2).
    Talts, Betancourt, Simpson, Vehtari, Gelman (2018), Validating Bayesian inference
    algorithms with simulation-based calibration, arXiv:1804.06788.
    Smith (1975), A Bayesian approach to inference about a change-point, Biometrika 62.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.scipy.special import log_ndtr, logsumexp

from .scenario import MODES

#: BibTeX of the methods cited above.
BIBTEX = r"""@article{albert1993bayesian,
  title = {Bayesian analysis of binary and polychotomous response data}, author = {Albert, James H. and Chib, Siddhartha},
  journal = {Journal of the American Statistical Association}, volume = {88}, number = {422}, pages = {669--679}, year = {1993}}
@article{eilers1996flexible,
  title = {Flexible smoothing with {B}-splines and penalties}, author = {Eilers, Paul H. C. and Marx, Brian D.},
  journal = {Statistical Science}, volume = {11}, number = {2}, pages = {89--121}, year = {1996}}
@book{rasmussen2006gaussian,
  title = {Gaussian Processes for Machine Learning}, author = {Rasmussen, Carl Edward and Williams, Christopher K. I.},
  publisher = {MIT Press}, year = {2006}}
@article{riutort2023practical,
  title = {Practical {H}ilbert space approximate {B}ayesian {G}aussian processes for probabilistic programming},
  author = {Riutort-Mayol, Gabriel and B{\"u}rkner, Paul-Christian and Andersen, Michael R. and Solin, Arno and Vehtari, Aki},
  journal = {Statistics and Computing}, volume = {33}, number = {1}, pages = {17}, year = {2023}}
@article{vehtari2021rank,
  title = {Rank-normalization, folding, and localization: an improved {$\widehat{R}$} for assessing convergence of {MCMC}},
  author = {Vehtari, Aki and Gelman, Andrew and Simpson, Daniel and Carpenter, Bob and B{\"u}rkner, Paul-Christian},
  journal = {Bayesian Analysis}, volume = {16}, number = {2}, pages = {667--718}, year = {2021}}
@article{talts2018validating,
  title = {Validating {B}ayesian inference algorithms with simulation-based calibration},
  author = {Talts, Sean and Betancourt, Michael and Simpson, Daniel and Vehtari, Aki and Gelman, Andrew},
  journal = {arXiv preprint arXiv:1804.06788}, year = {2018}}
@article{smith1975bayesian,
  title = {A {B}ayesian approach to inference about a change-point in a sequence of random variables},
  author = {Smith, A. F. M.}, journal = {Biometrika}, volume = {62}, number = {2}, pages = {407--416}, year = {1975}}
@article{adams2007bayesian,
  title = {Bayesian Online Changepoint Detection}, author = {Adams, Ryan Prescott and MacKay, David J. C.},
  journal = {arXiv preprint arXiv:0710.3742}, year = {2007}}
"""

MODELS = ("probit", "gp")
LINKS = ("probit", "logit")
QUANTITIES = ("fail", "silent")
RHAT_MAX = 1.01
ESS_MIN = 100.0
#: Priors of the boundary model, in unit coordinates (the grid spans [0, 1]): the
#: boundary's support is [-MARGIN, 1 + MARGIN], its logit's start N(0, ETA_SD^2).
MARGIN, ETA_SD, LOG_SLOPE_MEAN, LOG_SLOPE_SD = 0.5, 1.1, float(np.log(10.0)), 1.0
#: Hilbert-space GP: basis functions per axis and the half-width L of its box.
GP_BASIS, GP_L = 6, 1.0
N_FINE = 64  # points of the boundary curve along x
#: NUTS target acceptance of the probit boundary fits (see :func:`run_nuts`).
BOUNDARY_TARGET_ACCEPT = 0.99


class EstimateError(ValueError):
    """A sweep, trajectory or option that cannot be estimated from (the message says why)."""


# --------------------------------------------------------------------------- axes


def is_log_axis(v: np.ndarray) -> bool:
    """A positive, geometrically spaced axis of >= 3 values (ratio > 1.5): drawn and
    modelled in log10.

    Args:
        v: the axis values.

    Returns:
        bool.
    """
    v = np.asarray(v, float)
    if len(v) < 3 or np.any(v <= 0):
        return False
    r = v[1:] / v[:-1]
    return bool(np.allclose(r, r[0], rtol=1e-3) and r[0] > 1.5)


class Axis(NamedTuple):
    """A swept axis and its map to unit coordinates u in [0, 1] (log10 on a log axis)."""

    name: str
    values: np.ndarray
    log: bool
    lo: float
    hi: float

    @classmethod
    def of(cls, name: str, values: Any) -> Axis:
        """The axis of these values (log10 when geometrically spaced).

        Args:
            name: the field path.
            values: the axis values.

        Returns:
            The Axis (name, values, log flag, range).
        """
        v = np.asarray(values, float)
        log = is_log_axis(v)
        t = np.log10(v) if log else v
        lo, hi = float(t.min()), float(t.max())
        if hi <= lo:
            raise EstimateError(f"axis {name!r} has a single value; a boundary needs at least two")
        return cls(name, v, log, lo, hi)

    def unit(self, v: Any) -> np.ndarray:
        """Unit coordinates u = (t - lo) / (hi - lo), t = v or log10 v.

        Args:
            v: values on the axis.

        Returns:
            u in [0, 1] over the axis' range.
        """
        t = np.log10(np.asarray(v, float)) if self.log else np.asarray(v, float)
        return (t - self.lo) / (self.hi - self.lo)

    def value(self, u: Any) -> np.ndarray:
        """The axis value at unit coordinate u (inverse of :meth:`unit`).

        Args:
            u: unit coordinates.

        Returns:
            The axis values.
        """
        t = self.lo + np.asarray(u, float) * (self.hi - self.lo)
        return 10.0**t if self.log else t


@dataclass(frozen=True)
class Counts:
    """Binomial outcomes over a 2-D grid: k[i, j] of n[i, j] runs at (x_i, y_j)."""

    x: Axis
    y: Axis
    k: np.ndarray
    n: np.ndarray
    label: str = ""

    def __post_init__(self):
        shape = (len(self.x.values), len(self.y.values))
        if self.k.shape != shape or self.n.shape != shape:
            raise EstimateError(f"counts must have shape {shape} (x, y), got k {self.k.shape}, n {self.n.shape}")
        if np.any(self.k < 0) or np.any(self.k > self.n):
            raise EstimateError("counts must satisfy 0 <= k <= n in every cell")

    @property
    def fraction(self) -> np.ndarray:
        """k / n per cell (NaN where n = 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.k / np.maximum(self.n, 1), np.nan)

    def direction(self) -> float:
        """+1 when the outcome grows with y (failures above the boundary), else -1.

        Returns:
            +1.0 or -1.0 (the count-weighted correlation of the outcome rate with y).
        """
        w = self.n.astype(float)
        if w.sum() == 0:
            return 1.0
        p = np.nan_to_num(self.fraction)
        yu = self.y.unit(self.y.values)[None, :]
        pm, ym = (w * p).sum() / w.sum(), (w * yu).sum() / w.sum()
        c = (w * (p - pm) * (yu - ym)).sum()
        return -1.0 if c < 0 else 1.0


def sweep_counts(ds: xr.Dataset, mode: str, quantity: str = "fail", along: str | None = None) -> Counts:
    """The outcome counts of ``mode`` over a two-axis sweep. ``quantity`` "fail" counts
    failed runs, "silent" silently failed runs; invalid runs are left out. ``along`` names
    the x axis (the boundary is y as a function of x; default the sweep's first axis).

    Args:
        ds: a two-axis sweep.
        mode: the mode.
        quantity: ``fail`` or ``silent``.
        along: the x axis.

    Returns:
        Counts (k and n per (x, y) cell, and the two axes).

    Raises:
        EstimateError: a sweep not over two axes, an unknown mode, quantity or axis.
    """
    axes = json.loads(ds.attrs.get("axes", "[]"))
    if len(axes) != 2:
        raise EstimateError(f"a phase boundary needs a sweep over exactly two axes, got {len(axes)}: {axes}")
    if mode not in MODES:
        raise EstimateError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    if quantity not in QUANTITIES:
        raise EstimateError(f"unknown quantity {quantity!r}; quantities: {', '.join(QUANTITIES)}")
    if along is not None and along not in axes:
        raise EstimateError(f"along={along!r} is not an axis of the sweep: {axes}")
    xname = along or axes[0]
    yname = [a for a in axes if a != xname][0]
    m = ds.sel(mode=mode)
    valid = m["valid_run"].transpose(xname, yname, "seed").values.astype(bool)
    if quantity == "fail":
        hit = m["failure_round"].transpose(xname, yname, "seed").values >= 0
    else:
        hit = m["silent"].transpose(xname, yname, "seed").values.astype(bool)
    k = (hit & valid).sum(-1)
    n = valid.sum(-1)
    return Counts(Axis.of(xname, ds[xname].values), Axis.of(yname, ds[yname].values), k, n, f"P({quantity}) {mode}")


# --------------------------------------------------------------------------- models


def bspline_basis(u: np.ndarray, n_basis: int) -> np.ndarray:
    """(len(u), n_basis) clamped B-spline design matrix on [0, 1] (cubic when n_basis >= 4;
    equally spaced interior knots).

    Args:
        u: points in [0, 1].
        n_basis: the number of basis functions.

    Returns:
        The design matrix (rows sum to 1).
    """
    from scipy.interpolate import BSpline

    deg = min(3, n_basis - 1)
    inner = np.linspace(0.0, 1.0, n_basis - deg + 1)[1:-1]
    t = np.concatenate([np.zeros(deg + 1), inner, np.ones(deg + 1)])
    return BSpline.design_matrix(np.clip(np.asarray(u, float), 0.0, 1.0), t, deg).toarray()


def _log_cdf(z, link: str):
    return log_ndtr(z) if link == "probit" else jax.nn.log_sigmoid(z)


def _cdf(z, link: str):
    return jax.scipy.stats.norm.cdf(z) if link == "probit" else jax.nn.sigmoid(z)


def _boundary_weights(zw, smooth):
    """Spline coefficients of the boundary's logit eta(x) from standard normals: a random
    walk started at N(0, ETA_SD^2) with steps N(0, (2 smooth)^2)."""
    steps = jnp.concatenate([jnp.zeros(zw.shape[:-1] + (1,)), jnp.cumsum(zw[..., 1:], axis=-1)], axis=-1)
    return ETA_SD * zw[..., :1] + 2.0 * smooth * steps


def boundary_of(eta):
    """The boundary in unit coordinates from its logit: -MARGIN + (1 + 2 MARGIN) sigmoid(eta).

    Args:
        eta: the boundary's logit (any shape).

    Returns:
        b in (-MARGIN, 1 + MARGIN): the axis' unit range with a margin either side.
    """
    return -MARGIN + (1.0 + 2.0 * MARGIN) * jax.nn.sigmoid(eta)


def probit_boundary_model(B, yu, k, n, direction, smooth, link="probit"):
    """Boundary model (module docstring) of R independent grids at once: B (nx, L) spline
    basis at the data's x, yu (ny,), k and n (R, nx, ny), direction (R,).

    Args:
        B: (nx, L) the boundary's basis at the data's x.
        yu: (ny,) the y values in unit coordinates.
        k: (R, nx, ny) outcomes.
        n: (R, nx, ny) runs.
        direction: (R,) +1 or -1.
        smooth: the prior scale of the coefficients' second differences.
        link: ``probit`` or ``logit``.

    Returns:
        None: a numpyro model (it samples its sites and observes the data).
    """
    import numpyro
    import numpyro.distributions as dist

    R = k.shape[0]
    zw = numpyro.sample("z_w", dist.Normal(0.0, 1.0).expand([R, B.shape[1]]).to_event(2))
    log_s = numpyro.sample("log_slope", dist.Normal(LOG_SLOPE_MEAN, LOG_SLOPE_SD).expand([R]).to_event(1))
    b = boundary_of(_boundary_weights(zw, smooth) @ B.T)  # (R, nx)
    z = (direction * jnp.exp(log_s))[:, None, None] * (yu[None, None, :] - b[:, :, None])
    numpyro.factor("binomial", jnp.sum(k * _log_cdf(z, link) + (n - k) * _log_cdf(-z, link)))


def _gp_features(xu: np.ndarray, yu: np.ndarray) -> np.ndarray:
    """Laplacian eigenfunctions on [-L, L]^2 at the points (x, y) of unit coordinates,
    (nx*ny, GP_BASIS^2), rows in (x, y) C-order."""
    from numpyro.contrib.hsgp.laplacian import eigenfunctions

    X, Y = np.meshgrid(xu, yu, indexing="ij")
    pts = np.stack([2.0 * X.ravel() - 1.0, 2.0 * Y.ravel() - 1.0], axis=-1) * 0.5  # [-1/2, 1/2]^2
    return np.asarray(eigenfunctions(jnp.asarray(pts), GP_L, [GP_BASIS, GP_BASIS]))


def _gp_sqrt_spd(alpha, length):
    from numpyro.contrib.hsgp.spectral_densities import diag_spectral_density_squared_exponential

    return jnp.sqrt(diag_spectral_density_squared_exponential(alpha, length, GP_L, [GP_BASIS, GP_BASIS], 2))


def gp_model(phi, k, n, link="probit"):
    """GP classifier (module docstring): phi (cells, M) eigenfunctions, k, n flat (cells,).

    Args:
        phi: (cells, M) the Hilbert-space basis at the cells.
        k: (cells,) outcomes.
        n: (cells,) runs.
        link: ``probit`` or ``logit``.

    Returns:
        None: a numpyro model (it samples its sites and observes the data).
    """
    import numpyro
    import numpyro.distributions as dist

    c = numpyro.sample("intercept", dist.Normal(0.0, 2.0))
    alpha = numpyro.sample("amplitude", dist.HalfNormal(2.0))
    length = numpyro.sample("length", dist.LogNormal(np.log(0.3), 0.5).expand([2]).to_event(1))
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([phi.shape[1]]).to_event(1))
    f = c + phi @ (_gp_sqrt_spd(alpha, length) * beta)
    numpyro.factor("binomial", jnp.sum(k * _log_cdf(f, link) + (n - k) * _log_cdf(-f, link)))


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Diagnostics:
    """Convergence of a NUTS fit: worst R-hat, smallest bulk/tail ESS over every scalar
    parameter (arviz), number of divergent transitions; flagged with the reasons."""

    r_hat: float
    ess_bulk: float
    ess_tail: float
    divergences: int
    chains: int
    draws: int
    sampled: bool = True  # False: no sampler ran (a degenerate fit; nothing to diagnose)

    @property
    def reasons(self) -> list[str]:
        """Why the fit is flagged: R-hat, divergences, ESS (empty when it is not)."""
        out = []
        if not self.sampled:
            return out
        if not np.isfinite(self.r_hat) or self.r_hat > RHAT_MAX:
            out.append(f"R-hat {self.r_hat:.3f} > {RHAT_MAX}")
        if self.divergences > 0:
            out.append(f"{self.divergences} divergent transitions")
        if not (self.ess_bulk >= ESS_MIN and self.ess_tail >= ESS_MIN):
            out.append(f"ESS bulk {self.ess_bulk:.0f} / tail {self.ess_tail:.0f} < {ESS_MIN:.0f}")
        return out

    @property
    def flagged(self) -> bool:
        """Whether any diagnostic failed."""
        return bool(self.reasons)


def diagnose(samples: dict[str, np.ndarray], diverging: np.ndarray) -> Diagnostics:
    """Diagnostics from per-chain draws {site: (chains, draws, ...)} and (chains, draws)
    divergence flags.

    Args:
        samples: per site, (chains, draws, ...) draws.
        diverging: (chains, draws) bool.

    Returns:
        Diagnostics (worst R-hat, smallest bulk and tail ESS, divergences).
    """
    import arviz as az

    rh, eb, et = [], [], []
    for v in samples.values():
        a = np.asarray(v, float)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        for i in range(a.shape[-1]):
            x = a[..., i]
            if np.ptp(x) == 0:
                continue
            rh.append(float(az.rhat(x)))
            eb.append(float(az.ess(x, method="bulk")))
            et.append(float(az.ess(x, method="tail")))
    ch, dr = np.asarray(diverging).shape
    return Diagnostics(
        max(rh, default=np.nan),
        min(eb, default=np.nan),
        min(et, default=np.nan),
        int(np.asarray(diverging).sum()),
        ch,
        dr,
    )


_MCMC: dict[tuple, Any] = {}


def run_nuts(
    model,
    key: tuple,
    args: tuple,
    *,
    chains: int,
    warmup: int,
    samples: int,
    seed: int,
    target_accept: float = 0.95,
    max_tree_depth: int = 8,
) -> tuple[dict[str, np.ndarray], Diagnostics]:
    """NUTS on ``model(*args)`` with ``chains`` vectorized chains; the compiled sampler is
    cached per (key, shapes), so refits of the same shapes do not recompile. Returns the
    draws grouped by chain and the diagnostics.

    The probit boundary fits pass :data:`BOUNDARY_TARGET_ACCEPT` (0.99): a sharp
    transition makes the grid nearly separable, and the cliffs it puts in the posterior of
    (boundary, slope) made a 0.95 step size diverge (the out-of-domain P(fail) fit of the
    default phase sweep: 2 divergent transitions at 0.95, none at 0.99, in no more time).

    Args:
        model: the numpyro model.
        key: the sampler cache's key (the model and its static settings).
        args: the model's arguments.
        chains: vectorized chains.
        warmup: warm-up draws per chain.
        samples: kept draws per chain.
        seed: the PRNG seed.
        target_accept: NUTS' target acceptance probability.
        max_tree_depth: NUTS' largest tree depth.

    Returns:
        ({site: (chains, draws, ...)}, Diagnostics).
    """
    from numpyro.infer import MCMC, NUTS

    if chains < 1 or warmup < 1 or samples < 1:
        raise EstimateError(f"chains, warmup and samples must be >= 1, got {chains}, {warmup}, {samples}")
    args = tuple(jnp.asarray(a) for a in args)
    ck = (key, tuple(a.shape for a in args), chains, warmup, samples, target_accept, max_tree_depth)
    mcmc = _MCMC.get(ck)
    if mcmc is None:
        kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth)
        mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=samples,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
            jit_model_args=True,
        )
        _MCMC[ck] = mcmc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging", "num_steps"))
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return draws, diagnose(draws, div)


def clear_cache() -> None:
    """Forget the compiled samplers."""
    _MCMC.clear()


# --------------------------------------------------------------------------- boundary fits


@dataclass
class BoundaryFit:
    """Posterior of one phase boundary and surface (see the module docstring).

    ``boundary``: (3, N_FINE) 5%, 50%, 95% posterior quantiles of the boundary y(x) in
    the y axis' units at ``x_fine``; ``p_in_range``: posterior probability, per x, that
    the boundary lies inside the swept y range; ``surface``: (S, nx, ny) posterior draws
    of P(outcome) at the grid cells; ``unit_draws``: (S, N_FINE) draws of the boundary in
    unit coordinates (NaN where a draw has none in range)."""

    counts: Counts
    model: str
    link: str
    x_fine: np.ndarray
    boundary: np.ndarray
    p_in_range: np.ndarray
    surface: np.ndarray
    diagnostics: Diagnostics
    draws: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    unit_draws: np.ndarray | None = field(repr=False, default=None)
    status: str = "fit"

    @property
    def flagged(self) -> bool:
        """Whether the fit's diagnostics failed (:attr:`Diagnostics.reasons`)."""
        return self.diagnostics.flagged

    def summary(self) -> dict[str, Any]:
        """The fit's label, model, status, diagnostics and mean P(boundary in range), as a dict.

        Returns:
            The dict.
        """
        d = self.diagnostics
        return dict(
            label=self.counts.label,
            model=self.model,
            status=self.status,
            r_hat=d.r_hat,
            ess_bulk=d.ess_bulk,
            ess_tail=d.ess_tail,
            divergences=d.divergences,
            flagged=d.flagged,
            reasons="; ".join(d.reasons),
            p_in_range=float(np.mean(self.p_in_range)),
        )


def fit_boundary(
    counts: Counts,
    *,
    model: str = "probit",
    link: str = "probit",
    n_basis: int = 6,
    smooth: float = 0.3,
    direction: float | None = None,
    chains: int = 4,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
) -> BoundaryFit:
    """Posterior of the phase boundary of ``counts`` (module docstring).

    Args:
        counts: the per-cell successes and trials over a two-axis grid (:func:`sweep_counts`).
        model: ``probit`` (a smooth boundary y = b(x) in a basis of ``n_basis`` functions)
            or ``gp`` (a Gaussian-process surface with a Hilbert-space basis).
        link: ``probit`` or ``logit`` of the cell probability.
        n_basis: basis functions of the boundary.
        smooth: prior scale of the boundary's roughness.
        direction: +1 when the probability grows with y, -1 when it falls, None to infer it.
        chains, warmup, samples: NUTS chains and their warm-up and kept draws.
        seed: the sampler's seed.

    Returns:
        BoundaryFit: posterior draws of the boundary on a fine x grid, the fitted surface,
        and the diagnostics (R-hat, bulk and tail ESS, divergences) with ``flagged`` set
        when they fail.
    """
    if model not in MODELS:
        raise EstimateError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    if link not in LINKS:
        raise EstimateError(f"unknown link {link!r}; links: {', '.join(LINKS)}")
    if not 2 <= n_basis <= 32:
        raise EstimateError(f"n_basis must be in [2, 32], got {n_basis}")
    if not smooth > 0:
        raise EstimateError(f"smooth must be > 0, got {smooth}")
    xu, yu = counts.x.unit(counts.x.values), counts.y.unit(counts.y.values)
    k, n = counts.k.astype(np.float32), counts.n.astype(np.float32)
    uf = np.linspace(0.0, 1.0, N_FINE)
    S = chains * samples
    if counts.k.sum() in (0, counts.n.sum()):  # no transition in the grid: nothing to sample
        rng = np.random.default_rng(seed)
        surface = rng.beta(counts.k + 0.5, counts.n - counts.k + 0.5, size=(S,) + counts.k.shape)
        side = "0" if counts.k.sum() == 0 else "1"
        return BoundaryFit(
            counts,
            model,
            link,
            counts.x.value(uf),
            np.full((3, N_FINE), np.nan),
            np.zeros(N_FINE),
            surface,
            Diagnostics(np.nan, np.nan, np.nan, 0, chains, samples, sampled=False),
            unit_draws=np.full((S, N_FINE), np.nan),
            status=f"no transition: empirical P = {side} in every cell (the boundary lies outside the grid; "
            "per-cell Jeffreys posteriors)",
        )
    if model == "probit":
        return fit_probit_boundaries(
            [counts],
            link=link,
            n_basis=n_basis,
            smooth=smooth,
            direction=direction,
            chains=chains,
            warmup=warmup,
            samples=samples,
            seed=seed,
        )[0]
    # the GP classifier
    phi = _gp_features(xu, yu)
    fn = lambda p_, k_, n_: gp_model(p_, k_, n_, link)  # noqa: E731
    draws, diag = run_nuts(
        fn, ("gp", link), (phi, k.ravel(), n.ravel()), chains=chains, warmup=warmup, samples=samples, seed=seed
    )
    flat = {k_: v.reshape((S,) + v.shape[2:]) for k_, v in draws.items()}
    coef = (
        np.asarray(jax.vmap(_gp_sqrt_spd)(jnp.asarray(flat["amplitude"]), jnp.asarray(flat["length"]))) * flat["beta"]
    )
    f_cells = flat["intercept"][:, None] + coef @ phi.T
    surface = np.asarray(_cdf(jnp.asarray(f_cells), link)).reshape(S, len(xu), len(yu))
    yf = np.linspace(0.0, 1.0, 2 * N_FINE)
    f_fine = flat["intercept"][:, None, None] + (coef @ _gp_features(uf, yf).T).reshape(S, N_FINE, len(yf))
    boundary_units = first_crossing(f_fine, yf)
    return _boundary_fit(counts, "gp", link, boundary_units, np.isfinite(boundary_units), surface, diag, draws)


def fit_probit_boundaries(
    counts: list[Counts],
    *,
    link: str = "probit",
    n_basis: int = 6,
    smooth: float = 0.3,
    direction: float | None = None,
    chains: int = 4,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
) -> list[BoundaryFit]:
    """The probit boundary posteriors of several grids of the same shape in one NUTS run:
    their joint posterior is the product of the independent ones, so each replication's
    draws are its own posterior (used for simulation-based calibration); R-hat and ESS
    are per grid, divergences are those of the joint run. Grids without a transition are
    sampled too (:func:`fit_boundary` reports them instead).

    Args:
        counts: grids of the same shape.
        link: ``probit`` or ``logit``.
        n_basis: the boundary's basis size.
        smooth: the roughness prior scale.
        direction: +1, -1 or None (each grid's own).
        chains, warmup, samples, seed: NUTS settings.

    Returns:
        One BoundaryFit per grid.
    """
    c0 = counts[0]
    if any(c.k.shape != c0.k.shape for c in counts):
        raise EstimateError("grids fitted together must have the same shape")
    xu, yu = c0.x.unit(c0.x.values), c0.y.unit(c0.y.values)
    S = chains * samples
    d = np.array([c.direction() if direction is None else float(np.sign(direction) or 1.0) for c in counts])
    k = np.stack([c.k for c in counts]).astype(np.float32)
    n = np.stack([c.n for c in counts]).astype(np.float32)
    fn = lambda B, y_, k_, n_, d_: probit_boundary_model(B, y_, k_, n_, d_, smooth, link)  # noqa: E731
    draws, joint = run_nuts(
        fn,
        ("probit", link, smooth),
        (bspline_basis(xu, n_basis), yu, k, n, d),
        chains=chains,
        warmup=warmup,
        samples=samples,
        seed=seed,
        target_accept=BOUNDARY_TARGET_ACCEPT,
    )
    uf = np.linspace(0.0, 1.0, N_FINE)
    Bf, Bc = bspline_basis(uf, n_basis), bspline_basis(xu, n_basis)
    no_div = np.zeros((chains, samples), bool)  # divergences are the joint run's, counted once
    fits = []
    for r, c in enumerate(counts):
        own = {"z_w": draws["z_w"][:, :, r], "log_slope": draws["log_slope"][:, :, r]}
        dg = diagnose(own, no_div)
        dg = Diagnostics(dg.r_hat, dg.ess_bulk, dg.ess_tail, joint.divergences, chains, samples)
        w = np.asarray(_boundary_weights(jnp.asarray(own["z_w"].reshape(S, -1)), smooth))
        slope = np.exp(own["log_slope"].reshape(S))
        unit = np.asarray(boundary_of(jnp.asarray(w @ Bf.T)))  # (S, N_FINE)
        z = (
            d[r]
            * slope[:, None, None]
            * (yu[None, None, :] - np.asarray(boundary_of(jnp.asarray(w @ Bc.T)))[:, :, None])
        )
        surface = np.asarray(_cdf(jnp.asarray(z), link))
        fits.append(_boundary_fit(c, "probit", link, unit, (unit >= 0) & (unit <= 1), surface, dg, own))
    return fits


def _boundary_fit(
    counts: Counts,
    model: str,
    link: str,
    unit: np.ndarray,
    inside: np.ndarray,
    surface: np.ndarray,
    diag: Diagnostics,
    draws: dict,
) -> BoundaryFit:
    inside = inside & np.isfinite(unit)
    p_in = inside.mean(0)
    with warnings.catch_warnings():  # the quantiles of the draws inside the axis domain
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(np.where(inside, unit, np.nan), [0.05, 0.5, 0.95], axis=0)
    q = np.where(p_in[None, :] >= 0.5, q, np.nan)  # mostly outside the grid: no boundary in it
    uf = np.linspace(0.0, 1.0, N_FINE)
    return BoundaryFit(
        counts, model, link, counts.x.value(uf), counts.y.value(q), p_in, surface, diag, draws, unit_draws=unit
    )


def first_crossing(f: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Along the last axis, the first point of ``grid`` (linearly interpolated) where ``f``
    changes sign from its value at grid[0]; NaN where it never does.

    Args:
        f: (..., G) values on the grid.
        grid: (G,) the grid.

    Returns:
        (...) the crossing points.
    """
    s = np.sign(f)
    change = s[..., 1:] != s[..., :1]
    has = change.any(-1)
    j = np.argmax(change, axis=-1)  # first index i+1 with a different sign
    f0 = np.take_along_axis(f, j[..., None], -1)[..., 0]
    f1 = np.take_along_axis(f, (j + 1)[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(f0 / (f0 - f1), 0.0, 1.0)
    x = grid[j] + t * (grid[j + 1] - grid[j])
    return np.where(has, x, np.nan)


def estimate(
    ds: xr.Dataset,
    *,
    modes: tuple[str, ...] | None = None,
    quantities: tuple[str, ...] = QUANTITIES,
    model: str = "probit",
    along: str | None = None,
    chains: int = 4,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
    progress=None,
    **kw,
) -> tuple[xr.Dataset, dict[tuple[str, str], BoundaryFit]]:
    """Boundary posteriors of every (mode, quantity) of a two-axis sweep, as one Dataset
    over (mode, quantity, x_fine) and (mode, quantity, x, y) with the diagnostics; also
    the fits themselves.

    Args:
        ds: a two-axis sweep (:func:`silentfail.sim.sweep.sweep`).
        modes: the modes to fit (default: all).
        quantities: ``fail`` (P(fail)) and/or ``silent`` (P(silent)).
        model: ``probit`` or ``gp`` (:func:`fit_boundary`).
        along: the axis the boundary is a function of (default: the sweep's first).
        chains, warmup, samples, seed: NUTS settings.
        progress: optional callback ``progress(done, total)``.
        **kw: passed to :func:`fit_boundary`.

    Returns:
        (Dataset of the boundaries' medians and 90% bands, the posterior surfaces and the
        diagnostics, {(mode, quantity): BoundaryFit}).
    """
    modes = tuple(modes or MODES)
    fits: dict[tuple[str, str], BoundaryFit] = {}
    jobs = [(m, q) for m in modes for q in quantities]
    for i, (m, q) in enumerate(jobs):
        fits[m, q] = fit_boundary(
            sweep_counts(ds, m, q, along), model=model, chains=chains, warmup=warmup, samples=samples, seed=seed, **kw
        )
        if progress:
            progress(i + 1, len(jobs))
    return boundary_dataset(fits, modes, quantities, ds.attrs), fits


def boundary_dataset(
    fits: dict[tuple[str, str], BoundaryFit], modes, quantities, attrs: dict | None = None
) -> xr.Dataset:
    """The fits as an xarray Dataset (coordinates in the sweep's units).

    Args:
        fits: ``{(mode, quantity): BoundaryFit}``.
        modes: the modes, in order.
        quantities: the quantities, in order.
        attrs: extra attributes.

    Returns:
        The Dataset (boundary quantiles on x_fine, surfaces on the cells, diagnostics).
    """
    f0 = next(iter(fits.values()))
    cx, cy = f0.counts.x, f0.counts.y
    get = lambda fn: np.stack([np.stack([fn(fits[m, q]) for q in quantities]) for m in modes])  # noqa: E731
    mq, grid = ("mode", "quantity"), ("mode", "quantity", cx.name, cy.name)
    data = {
        "boundary_q05": (mq + ("x_fine",), get(lambda f: f.boundary[0])),
        "boundary_median": (mq + ("x_fine",), get(lambda f: f.boundary[1])),
        "boundary_q95": (mq + ("x_fine",), get(lambda f: f.boundary[2])),
        "p_boundary_in_range": (mq + ("x_fine",), get(lambda f: f.p_in_range)),
        "surface_mean": (grid, get(lambda f: f.surface.mean(0))),
        "surface_q05": (grid, get(lambda f: np.quantile(f.surface, 0.05, axis=0))),
        "surface_q95": (grid, get(lambda f: np.quantile(f.surface, 0.95, axis=0))),
        "empirical": (grid, get(lambda f: f.counts.fraction)),
        "k": (grid, get(lambda f: f.counts.k)),
        "n": (grid, get(lambda f: f.counts.n)),
        "r_hat": (mq, get(lambda f: f.diagnostics.r_hat)),
        "ess_bulk": (mq, get(lambda f: f.diagnostics.ess_bulk)),
        "ess_tail": (mq, get(lambda f: f.diagnostics.ess_tail)),
        "divergences": (mq, get(lambda f: f.diagnostics.divergences)),
        "flagged": (mq, get(lambda f: f.diagnostics.flagged)),
        "reasons": (mq, get(lambda f: "; ".join(f.diagnostics.reasons) or "ok")),
        "status": (mq, get(lambda f: f.status)),
    }
    out = xr.Dataset(
        data,
        coords={
            "mode": list(modes),
            "quantity": list(quantities),
            "x_fine": f0.x_fine,
            cx.name: cx.values,
            cy.name: cy.values,
        },
    )
    out.attrs.update({k: v for k, v in (attrs or {}).items() if isinstance(v, (str, int, float))})
    out.attrs.update(
        kind="silentfail.estimate",
        model=f0.model,
        link=f0.link,
        x_axis=cx.name,
        y_axis=cy.name,
        chains=f0.diagnostics.chains,
        draws=f0.diagnostics.draws,
        rhat_max=RHAT_MAX,
        ess_min=ESS_MIN,
    )
    return out


# --------------------------------------------------------------------------- onset


ONSET_KINDS = ("hinge", "level")


def onset_design(T: int, kind: str) -> np.ndarray:
    """(T-1, T, p) design matrices X_tau for tau = 1..T-1 (time scaled by 1/T).

    Args:
        T: the rounds.
        kind: ``hinge`` or ``level``.

    Returns:
        The design matrices.

    Raises:
        EstimateError: an unknown kind.
    """
    if kind not in ONSET_KINDS:
        raise EstimateError(f"unknown onset kind {kind!r}; kinds: {', '.join(ONSET_KINDS)}")
    if T < 3:
        raise EstimateError(f"an onset needs a trajectory of >= 3 rounds, got {T}")
    t = np.arange(T, dtype=float)[None, :]
    tau = np.arange(1, T, dtype=float)[:, None]
    one = np.ones((T - 1, T))
    if kind == "level":
        return np.stack([one, (t >= tau) * 1.0], axis=-1)
    return np.stack([one, np.broadcast_to(t / T, (T - 1, T)), np.maximum(t - tau, 0.0) / T], axis=-1)


@dataclass(frozen=True)
class OnsetPrior:
    """b ~ N(0, diag(coef_sd^2)) in standardized units; log sigma uniform on a grid of
    ``n_sigma`` points in [log sigma_lo, log sigma_hi]."""

    coef_sd: float = 5.0
    sigma_lo: float = 1e-3
    sigma_hi: float = 3.0
    n_sigma: int = 48

    def sigmas(self) -> np.ndarray:
        """The log-spaced grid of the noise standard deviation sigma.

        Returns:
            (n_sigma,) the grid, from sigma_lo to sigma_hi.
        """
        return np.exp(np.linspace(np.log(self.sigma_lo), np.log(self.sigma_hi), self.n_sigma))


@dataclass
class OnsetPosterior:
    """Exact posterior over the change round tau (``p_tau``: (N, T), zero at tau = 0) and,
    with a threshold, draws of the failure round T_f (``t_fail``: (N, D); T = none within
    the horizon)."""

    kind: str
    p_tau: np.ndarray
    t_fail: np.ndarray | None
    log_evidence: np.ndarray

    def credible_set(self, mass: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Highest-posterior set of tau with mass >= ``mass``: (N, T) bool and its mass (N,).

        Args:
            mass: the credibility.

        Returns:
            ((N, T) bool set, (N,) its mass).
        """
        order = np.argsort(-self.p_tau, axis=1)
        ps = np.take_along_axis(self.p_tau, order, 1)
        cum = np.cumsum(ps, 1)
        keep_sorted = (cum - ps) < mass
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, 1)
        return keep, (self.p_tau * keep).sum(1)

    def tau_quantiles(self, q=(0.05, 0.5, 0.95)) -> np.ndarray:
        """Quantiles of the onset round tau per trajectory, from its exact posterior.

        Args:
            q: the quantile levels.

        Returns:
            (N, len(q)) rounds.
        """
        cdf = np.cumsum(self.p_tau, 1)
        return np.stack([(cdf < qq).sum(1) for qq in q], axis=-1)


def _standardize(y: np.ndarray, mask: np.ndarray, scale: tuple[float, float] | None):
    """(standardized y, loc (N, 1), scale (N, 1)): the given (loc, scale), or each
    trajectory's own mean and std over its observed rounds."""
    if scale is not None:
        if not scale[1] > 0:
            raise EstimateError(f"scale must be positive, got {scale[1]}")
        N = y.shape[0]
        return (y - scale[0]) / scale[1], np.full((N, 1), float(scale[0])), np.full((N, 1), float(scale[1]))
    cnt = np.maximum(mask.sum(1, keepdims=True), 1)
    mu = np.where(mask, y, 0).sum(1, keepdims=True) / cnt
    sd = np.sqrt(np.where(mask, (y - mu) ** 2, 0).sum(1, keepdims=True) / cnt)
    return (y - mu) / np.where(sd > 0, sd, 1.0), mu, np.where(sd > 0, sd, 1.0)


@jax.jit
def _onset_terms(X, y, m, prior_prec, sig2):
    """log p(y | tau, sigma) with b integrated, and the Gaussian conditional of b.
    X (J, T, p), y (N, T), m (N, T) mask, sig2 (G,) -> (N, J, G) and A, r for draws."""
    Xm = X[None] * m[:, None, :, None]  # (N, J, T, p)
    A = jnp.einsum("njtp,njtq->njpq", Xm, Xm)  # X'X
    r = jnp.einsum("njtp,nt->njp", Xm, y)  # X'y
    yy = jnp.sum(m * y * y, 1)  # (N,)
    nobs = jnp.sum(m, 1)
    M = A[:, :, None] + sig2[None, None, :, None, None] * prior_prec  # sigma^2 V0^-1 + X'X, (N, J, G, p, p)
    sol = jnp.linalg.solve(M, jnp.broadcast_to(r[:, :, None, :, None], M.shape[:-1] + (1,)))[..., 0]
    quad = (yy[:, None, None] - jnp.sum(r[:, :, None, :] * sol, -1)) / sig2
    # log|I + V0 X'X / s2| = log|M| - p log s2 - log|V0^-1|
    p = X.shape[-1]
    logdet = jnp.linalg.slogdet(M)[1] - p * jnp.log(sig2) - jnp.sum(jnp.log(jnp.diag(prior_prec)))
    ll = -0.5 * nobs[:, None, None] * jnp.log(2 * jnp.pi * sig2) - 0.5 * logdet - 0.5 * quad
    return ll, M, sol


def fit_onset(
    y: Any,
    *,
    kind: str = "hinge",
    threshold: float | None = None,
    below: bool = True,
    mask: Any = None,
    scale: tuple[float, float] | None = None,
    prior: OnsetPrior = OnsetPrior(),
    draws: int = 400,
    seed: int = 0,
) -> OnsetPosterior:
    """Exact change-point posterior of trajectories ``y`` (T,) or (N, T) (module
    docstring). ``mask``: observed rounds (default: the finite values). ``threshold``:
    with it, draws of the failure round T_f = the first round whose mean is below it
    (``below=True``) or above it. ``scale`` = (loc, scale) standardizes y (default: each
    trajectory's own mean and std).

    Args:
        y: (T,) or (N, T) trajectories.
        kind: ``hinge`` (b_0 + b_1 t/T + b_2 (t - tau)_+/T: the slope changes at tau)
            or ``level`` (b_0 + b_1 1[t >= tau]: the mean steps at tau).
        threshold: optional level that defines the failure round.
        below: the failure is the mean going below (True) or above ``threshold``.
        mask: (T,) or (N, T) observed rounds.
        scale: (loc, scale) to standardize with.
        prior: the coefficient and noise priors.
        draws: posterior draws of the change point.
        seed: the draws' seed.

    Returns:
        OnsetPosterior: the exact posterior p_tau (N, T) over the change round
        (coefficients marginalized in closed form, the noise scale on a grid), the draws
        of the failure round T_f when ``threshold`` is given, and the log evidence.
    """
    y = np.atleast_2d(np.asarray(y, float))
    N, T = y.shape
    X = onset_design(T, kind)
    m = np.isfinite(y) if mask is None else np.atleast_2d(np.asarray(mask, bool))
    if m.shape != y.shape:
        raise EstimateError(f"mask shape {m.shape} does not fit the trajectories {y.shape}")
    if np.any(m.sum(1) < X.shape[-1] + 1):
        raise EstimateError(f"every trajectory needs >= {X.shape[-1] + 1} observed rounds")
    ys, loc, sd = _standardize(np.where(m, y, 0.0), m, scale)
    ys = np.where(m, ys, 0.0)
    sig = prior.sigmas()
    prec = np.eye(X.shape[-1]) / prior.coef_sd**2
    ll, M, sol = _onset_terms(
        jnp.asarray(X), jnp.asarray(ys), jnp.asarray(m, float), jnp.asarray(prec), jnp.asarray(sig**2)
    )
    ll = np.asarray(ll, float)  # (N, J, G); uniform prior on tau and on the sigma grid
    ev = logsumexp(jnp.asarray(ll), axis=(1, 2))
    post = np.exp(ll - np.asarray(ev)[:, None, None])
    p_tau = np.zeros((N, T))
    p_tau[:, 1:] = post.sum(2)
    t_fail = None
    if threshold is not None:
        rng = np.random.default_rng(seed)
        J, G = post.shape[1:]
        flat = post.reshape(N, -1)
        idx = np.stack([rng.choice(J * G, size=draws, p=f / f.sum()) for f in flat])  # (N, D)
        jj, gg = idx // G, idx % G
        Mn, mu = np.asarray(M), np.asarray(sol)
        rows = np.arange(N)[:, None]
        Msel, musel = Mn[rows, jj, gg], mu[rows, jj, gg]  # (N, D, p, p), (N, D, p)
        cov = sig[gg][..., None, None] ** 2 * np.linalg.inv(Msel)
        L = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[-1]))
        b = musel + np.einsum("ndpq,ndq->ndp", L, rng.standard_normal(musel.shape))
        path = np.einsum("ndtp,ndp->ndt", X[jj], b) * sd[:, :, None] + loc[:, :, None]  # mean path, y units
        cross = path < threshold if below else path > threshold
        t_fail = np.where(cross.any(-1), np.argmax(cross, -1), T)
    return OnsetPosterior(kind, p_tau, t_fail, np.asarray(ev) - (np.log(T - 1) + np.log(len(sig))))


def onset_nuts_model(X, y, m, coef_sd, log_sig_lo, log_sig_hi):
    """The onset model of :func:`fit_onset` in numpyro: b, log sigma sampled, tau
    marginalized (uniform on 1..T-1) by log-sum-exp; ``y`` (N, T) standardized.

    Args:
        X: (T-1, T, p) the design matrices of every tau.
        y: (N, T) standardized trajectories.
        m: (N, T) observed-round mask.
        coef_sd: the coefficients' prior scale.
        log_sig_lo: log of the smallest sigma.
        log_sig_hi: log of the largest sigma.

    Returns:
        None: a numpyro model (it samples its sites and observes the data).
    """
    import numpyro
    import numpyro.distributions as dist

    N, p = y.shape[0], X.shape[-1]
    with numpyro.plate("trajectory", N):
        b = numpyro.sample("b", dist.Normal(jnp.zeros(p), coef_sd).to_event(1))
        log_sig = numpyro.sample("log_sigma", dist.Uniform(log_sig_lo, log_sig_hi))
        mean = jnp.einsum("jtp,np->njt", X, b)  # (N, J, T)
        lp = jnp.sum(m[:, None, :] * dist.Normal(mean, jnp.exp(log_sig)[:, None, None]).log_prob(y[:, None, :]), -1)
        numpyro.factor("tau_marginal", logsumexp(lp, axis=1) - jnp.log(X.shape[0]))


def fit_onset_nuts(
    y: Any,
    *,
    kind: str = "hinge",
    scale: tuple[float, float] | None = None,
    prior: OnsetPrior = OnsetPrior(),
    chains: int = 2,
    warmup: int = 300,
    samples: int = 300,
    seed: int = 0,
) -> tuple[np.ndarray, Diagnostics]:
    """p(tau | y) by NUTS with tau marginalized (Rao-Blackwellized over the draws), for
    (N, T) complete trajectories; the cross-check of :func:`fit_onset`.

    Args:
        y: (N, T) trajectories.
        kind: ``hinge`` or ``level``.
        scale: (loc, scale) to standardize with.
        prior: the priors.
        chains, warmup, samples, seed: NUTS settings.

    Returns:
        ((N, T) p(tau | y), Diagnostics).
    """
    y = np.atleast_2d(np.asarray(y, float))
    N, T = y.shape
    X = onset_design(T, kind)
    m = np.ones_like(y)
    ys = _standardize(y, m.astype(bool), scale)[0]
    args = (X, ys, m, prior.coef_sd, np.log(prior.sigma_lo), np.log(prior.sigma_hi))
    draws, diag = run_nuts(
        onset_nuts_model, ("onset", kind), args, chains=chains, warmup=warmup, samples=samples, seed=seed
    )
    b = draws["b"].reshape(-1, N, X.shape[-1])
    sig = np.exp(draws["log_sigma"].reshape(-1, N))
    mean = np.einsum("jtp,snp->snjt", X, b)
    lp = (-0.5 * ((ys[None, :, None, :] - mean) / sig[:, :, None, None]) ** 2).sum(-1)
    w = np.exp(lp - lp.max(-1, keepdims=True))
    p = (w / w.sum(-1, keepdims=True)).mean(0)
    p_tau = np.zeros((N, T))
    p_tau[:, 1:] = p
    return p_tau, diag


# --------------------------------------------------------------------------- region probabilities


def region_probability(surface: np.ndarray, region: np.ndarray, op: str, level: float) -> tuple[float, np.ndarray]:
    """From posterior draws of a surface (S, *grid) and a boolean ``region`` mask (grid):
    the posterior probability that ``P op level`` holds at every cell of the region, and
    per cell the posterior probability that it holds there.

    Args:
        surface: (S, *grid) posterior draws of P.
        region: (*grid) bool.
        op: ``>=`` or ``<=``.
        level: the level.

    Returns:
        (P(it holds everywhere in the region), (*grid) per-cell probabilities).
    """
    ops = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
    if op not in ops:
        raise EstimateError(f"unknown comparison {op!r}; use one of {', '.join(ops)}")
    holds = ops[op](surface, level)  # (S, *grid)
    cell = holds.mean(0)
    region = np.broadcast_to(np.asarray(region, bool), cell.shape)
    if not region.any():
        raise EstimateError("the region holds no grid cell")
    every = holds.reshape(holds.shape[0], -1)[:, region.ravel()].all(-1).mean()
    return float(every), cell
