"""``Population``: per-client distributions and sufficient statistics (the silentfail reference paper (paper/main.tex),
The stylized model), built once per (scenario, seed).

A client is its (M_c, m_c): O(d^2) state, independent of its sample size. In
``population`` mode the training statistics are the exact population moments. In
``finite`` mode they are drawn exactly for n_c samples: cell counts ~ Multinomial(n_c,
pi_c), cell means ~ N(mu, Sigma / n_cell), cell scatter ~ Wishart(n_cell - 1, Sigma),
which is identical in distribution to sampling the data. In ``logistic`` mode the data
are materialized (up to ``max_samples`` per client) for the logistic loss.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import metrics as mt
from .config import Config
from .metrics import Confidence, accuracy
from .personalize import check_stable, client_maps, max_curvature, projector, teacher_moments
from .realdata import sample_cells
from .scenario import Scenario, ScenarioError
from .shifts import SHIFT_FAMILIES, from_scenario, interpolate
from .world import ClientWorld, World, Y, augment, base_client, client_moments, make_world, over_minority


class Population(NamedTuple):
    """All per-client arrays (leading axis: client). A PyTree."""

    base: ClientWorld  # unshifted client distributions (for temporal drift)
    shifted: ClientWorld  # fully shifted client distributions
    M: Array  # (N, D, D) population second moments of the shifted distribution
    m: Array  # (N, D)
    M_train: Array  # (N, D, D) training statistics (= M in population mode)
    m_train: Array  # (N, D)
    n: Array  # (N,) sample sizes
    weight: Array  # (N,) aggregation weights n_c / mean(n)
    q: Array  # (N,) participation probabilities
    byzantine: Array  # (N,) bool
    ood_panel: Array  # (R,) a fixed random panel of clients every personal model is evaluated on
    fm_acc: Array  # (N,) FM accuracy on each client's distribution
    P: Array  # (N, D, D) affine personalization maps (static shifts)
    b: Array  # (N, D)
    X: Array | None  # (N, n_max, D) logistic mode data
    y: Array | None  # (N, n_max)
    mask: Array | None  # (N, n_max)


class Context(NamedTuple):
    """Population-independent arrays shared by all clients (a PyTree)."""

    world: World
    theta0: Array
    Pi: Array
    teacher: tuple[Array, Array]
    confidence: Confidence  # the FM's confidence map
    key: Array | None = None  # the clients' held-out draws (a Monte Carlo client model, sim/mlp.py); None: exact


def sample_sizes(sc: Scenario, key: Array) -> Array:
    """Per-client sample sizes n_c = n exp(s z - s^2 / 2), z ~ N(0, 1) (log-normal with mean n,
    ``population.samples_spread`` s).

    Args:
        sc: the scenario (``samples_per_client`` n, ``samples_spread`` s, ``num_clients``).
        key: a JAX PRNG key.

    Returns:
        (N,) float sample sizes.
    """
    p = sc.population
    z = jax.random.normal(key, (p.num_clients,))
    n = p.samples_per_client * jnp.exp(p.samples_spread * z - 0.5 * p.samples_spread**2)
    return jnp.maximum(2.0, jnp.round(n))


def wishart(key: Array, df: Array, Sigma: Array) -> Array:
    """W ~ Wishart(df, Sigma) for integer df >= 0 (singular when df < d): Bartlett's
    decomposition when df >= d, else a sum of df Gaussian outer products.

    Args:
        key: a JAX PRNG key.
        df: degrees of freedom (an integer).
        Sigma: (d, d) the scale matrix.

    Returns:
        (d, d) W.
    """
    d = Sigma.shape[-1]
    L = jnp.linalg.cholesky(Sigma)
    k1, k2, k3 = jax.random.split(key, 3)
    # Bartlett: A lower triangular, A_ii^2 ~ chi2(df - i), A_ij ~ N(0, 1) below
    dof = jnp.maximum(df - jnp.arange(d), 1.0)
    diag = jnp.sqrt(2.0 * jax.random.gamma(k1, dof / 2.0))
    A = jnp.tril(jax.random.normal(k2, (d, d)), -1) + jnp.diag(diag)
    bart = L @ A @ A.T @ L.T
    Z = jax.random.normal(k3, (d, d)) * (jnp.arange(d) < df)[:, None]
    small = L @ Z.T @ Z @ L.T
    return jnp.where(df >= d, bart, small)


def sample_statistics(key: Array, cw: ClientWorld, world: World, n: Array) -> tuple[Array, Array]:
    """Exact finite-sample squared-loss statistics (M_hat, m_hat) of n samples:
    M_hat = (1/n) sum_i x~_i x~_i^T, m_hat = (1/n) sum_i y~_i x~_i, y~ the observed label.

    Cell (y, a) holds n_ya ~ Multinomial samples with mean xbar_ya ~ N(mu_ya, Sigma_a / n_ya)
    and scatter W_ya ~ Wishart(n_ya - 1, Sigma_a), independent. Under label noise
    (``world.flip``) f_ya ~ Binomial(n_ya, rho_a) of them are flipped; given the cell's
    sum, the flipped part's sum is S_f = (f/n) S + v with v ~ N(0, f (n - f)/n Sigma_a)
    independent of the two parts' own scatters, and W = W' + (n / (f (n - f))) v v^T with
    W' ~ Wishart(n - 2, Sigma_a): the same law as flipping materialized samples, and
    m_hat = (1/n) sum_ya y (S~_ya - 2 S~_f,ya) (x~ sums).

    Args:
        key: a JAX PRNG key.
        cw: the client's distribution.
        world: the base world.
        n: the sample size.

    Returns:
        (M_hat (D, D), m_hat (D,)), drawn exactly (Wishart and Gaussian), without materializing samples.
    """
    G, d = cw.mu.shape[1], cw.mu.shape[2]
    kc, km, kw = jax.random.split(key, 3)
    counts = jax.random.multinomial(kc, n, cw.pi.reshape(-1)).reshape(2, G)
    Sig = cw.scale * world.Sigma  # (G, d, d)
    L = jnp.linalg.cholesky(Sig)
    z = jax.random.normal(km, (2, G, d))
    xbar = cw.mu + jnp.einsum("aij,yaj->yai", L, z) / jnp.sqrt(jnp.maximum(counts, 1.0))[..., None]
    wkeys = jax.random.split(kw, 2 * G).reshape(2, G)
    wishart_cells = jax.vmap(jax.vmap(wishart, in_axes=(0, 0, 0)), in_axes=(0, 0, None))
    xt = augment(xbar)  # (2, G, D)
    if world.flip is None:
        W = wishart_cells(wkeys, jnp.maximum(counts - 1.0, 0.0), Sig)
        ysum = xt  # the observed labels' sum per cell / n_ya: y xbar~
    else:  # the flips' draws come from a key of their own
        kf, kv = jax.random.split(jax.random.fold_in(key, 1))
        flips = jax.random.binomial(kf, counts, jnp.broadcast_to(world.flip, counts.shape))
        split = flips * (counts - flips) / jnp.maximum(counts, 1.0)  # f (n - f) / n, 0 when f = 0 or f = n
        v = jnp.einsum("aij,yaj->yai", L, jax.random.normal(kv, (2, G, d))) * jnp.sqrt(split)[..., None]
        u = v * jnp.sqrt(counts / jnp.maximum(flips * (counts - flips), 1.0))[..., None]
        W = wishart_cells(wkeys, jnp.maximum(counts - 2.0, 0.0), Sig) + jnp.einsum("yai,yaj->yaij", u, u)
        W = jnp.where((split > 0)[..., None, None], W, wishart_cells(wkeys, jnp.maximum(counts - 1.0, 0.0), Sig))
        # S~_f / n_ya = (f / n) [xbar; 1] + [v / n; 0]
        flipped = (flips / jnp.maximum(counts, 1.0))[..., None] * xt + jnp.pad(
            v / jnp.maximum(counts, 1.0)[..., None], ((0, 0), (0, 0), (0, 1))
        )
        ysum = xt - 2.0 * flipped
    S = jnp.zeros((2, G, d + 1, d + 1)).at[..., :d, :d].set(W)
    M_hat = (S + counts[..., None, None] * jnp.einsum("yai,yaj->yaij", xt, xt)).sum((0, 1)) / n
    m_hat = jnp.einsum("ya,y,yai->i", counts, Y, ysum) / n
    return M_hat, m_hat


def sample_data(
    key: Array, cw: ClientWorld, world: World, n_max: int, split: str = "train"
) -> tuple[Array, Array, Array]:
    """Materialize n_max samples (x~, y, a) of a client's distribution, y the observed
    label (flipped with probability rho_a under the world's label noise). On a real
    dataset (``world.data``) the samples are images of ``split`` (``sim/realdata.py``).

    Args:
        key: a JAX PRNG key.
        cw: the client's distribution.
        world: the base world.
        n_max: the samples drawn.
        split: a real dataset's split: ``"train"`` (the clients') or ``"public"`` (the FM's).

    Returns:
        (x~ (n_max, D), y (n_max,), a (n_max,)).
    """
    G, d = cw.mu.shape[1], cw.mu.shape[2]
    if world.data is not None:
        x, yi, ai = sample_cells(key, world.data, split, cw.pi, cw.mu, cw.scale, world.mu, n_max)
    else:
        k1, k2 = jax.random.split(key)
        cell = jax.random.categorical(k1, jnp.log(jnp.maximum(cw.pi.reshape(-1), 1e-30)), shape=(n_max,))
        yi, ai = cell // G, cell % G
        L = jnp.linalg.cholesky(cw.scale * world.Sigma)
        x = cw.mu[yi, ai] + jnp.einsum("nij,nj->ni", L[ai], jax.random.normal(k2, (n_max, d)))
    y = Y[yi]
    if world.flip is not None:  # the observed labels: flipped with probability rho_a (a key of its own)
        y = jnp.where(jax.random.uniform(jax.random.fold_in(key, 1), (n_max,)) < world.flip[ai], -y, y)
    return augment(x), y, ai


def participation(sc: Scenario, shifted: ClientWorld) -> Array:
    """q_c = q (1 - disparity m_c) / (1 - disparity mean_c m_c), clipped to [0, 1], m_c the
    client's mass in the minority groups (the odd groups, ``world.minority_groups``:
    a = 1 of two, a = 1 and 3 of four): clients rich in a minority join less
    (participation resource disparity).

    Args:
        sc: the scenario (``participation`` q, ``participation_disparity``).
        shifted: the clients' shifted distributions.

    Returns:
        (N,) q_c.
    """
    f = sc.federation
    minority = over_minority(shifted.pi.sum(axis=1), jnp.sum)  # (N,) m_c
    scale = (1 - f.participation_disparity * minority) / (1 - f.participation_disparity * minority.mean())
    return jnp.clip(f.participation * scale, 0.0, 1.0)


def make_context(sc: Scenario, key: Array) -> Context:
    """What every client shares: the world, the FM theta_0, the subspace projector, the teacher's moments and the FM's
    confidence map.

    Args:
        sc: the scenario.
        key: a JAX PRNG key (the subspace projector).

    Returns:
        Context(world, theta0, Pi, teacher, confidence, key): theta_0 and its confidence
        map are the client model's (closed form for the linear readout).
    """
    from .models import client_model, hook

    model = client_model(sc)
    world = make_world(sc)
    theta0 = hook(model, "foundation")(sc, world)
    conf = hook(model, "confidence")(sc, world, theta0)
    return Context(
        world=world,
        theta0=theta0,
        Pi=projector(sc, key),
        teacher=teacher_moments(world, sc),
        confidence=conf,
        key=None if model.exact else jax.random.fold_in(key, 1),
    )


def check_clients(sc: Scenario, clients: ClientWorld) -> ClientWorld:
    """Validate client distributions a user supplies in place of the shift families.

    Each client c is a mixture over the (label y, group a) cells: priors pi_c(y, a),
    means mu_c(y, a) (d,) and a covariance scale s_c on the world's Sigma_a; the engine
    computes every metric of it exactly, as for the scenario's own clients.

    Args:
        sc: the scenario (``population.num_clients`` N, ``world.groups`` G, ``world.d``);
            its shift families must be off (the supplied clients replace them).
        clients: ``ClientWorld(pi (N, 2, G), mu (N, 2, G, d), scale (N,))``.

    Returns:
        The clients as float32 arrays.

    Raises:
        ScenarioError: naming the array whose shape or values are wrong, or the shift
            family that is on.
    """
    N, G, d = sc.population.num_clients, sc.world.groups, sc.world.d
    world = make_world(sc)
    on = [name for f in SHIFT_FAMILIES.values() if f.build(world, sc) is not None for name in f.field_names()]
    if on:
        raise ScenarioError(f"clients are supplied, so the scenario's shift families must be off: {', '.join(on)}")
    want = {"pi": (N, 2, G), "mu": (N, 2, G, d), "scale": (N,)}
    out = {}
    for name, shape in want.items():
        a = np.asarray(getattr(clients, name), dtype=np.float64)
        if a.shape != shape:
            raise ScenarioError(f"clients.{name} has shape {a.shape}; expected {shape} (N, 2 labels, G groups, d)")
        if not np.isfinite(a).all():
            raise ScenarioError(f"clients.{name} has non-finite values")
        out[name] = a
    if (out["pi"] < 0).any() or not np.allclose(out["pi"].sum((1, 2)), 1.0, atol=1e-5):
        raise ScenarioError("clients.pi must be non-negative and sum to 1 over (label, group) for every client")
    if (out["scale"] <= 0).any():
        raise ScenarioError("clients.scale must be > 0 (it scales the covariances)")
    return ClientWorld(*(jnp.asarray(out[k], jnp.float32) for k in ("pi", "mu", "scale")))


def client_strengths(sc: Scenario, key: Array) -> Array:
    """Per-client shift strengths s_c ~ Beta(f kappa, (1 - f) kappa), f = ``shifts.strength``
    and kappa = ``shifts.strength_concentration``: E s_c = f and Var s_c = f (1 - f) /
    (kappa + 1); s_c = f exactly at f = 0 (the null runs) and f = 1.

    Args:
        sc: the scenario.
        key: a JAX PRNG key.

    Returns:
        (N,) strengths in [0, 1].
    """
    f = jnp.asarray(sc.shifts.strength, jnp.float32)
    kappa = sc.shifts.strength_concentration
    inside = (f > 0) & (f < 1)
    a, b = jnp.where(inside, f * kappa, 1.0), jnp.where(inside, (1 - f) * kappa, 1.0)
    s = jax.random.beta(key, a, b, (sc.population.num_clients,))
    return jnp.where(inside, s, f)


def build_population(sc: Scenario, key: Array, clients: ClientWorld | None = None) -> tuple[Context, Population]:
    """Draw the clients of a scenario: a pure function of (scenario, key), compiled
    once per scenario. Raises ScenarioError if local gradient descent would diverge.

    Args:
        sc: the scenario.
        key: a JAX PRNG key.
        clients: client distributions to use instead of the scenario's shift families
            (:func:`check_clients`); every other draw (sample sizes, statistics,
            participation, the OOD panel) is the scenario's, from the same key.

    Returns:
        (Context, Population): the shared world and FM, and the clients' arrays
        (distributions, local maps, sample statistics, weights, participation, the OOD panel).

    Raises:
        ScenarioError: local gradient descent diverges for some client.
    """
    if clients is not None:
        clients = check_clients(sc, clients)
    ctx, pop, lam_max = _compiled_build(Config(sc), key, clients)
    check_stable(lam_max, sc)
    return ctx, pop


@jax.jit
def _compiled_build(cfg: Config, key: Array, clients: ClientWorld | None) -> tuple[Context, Population, Array]:
    return _build(cfg.scenario, key, clients)


def _build(sc: Scenario, key: Array, clients: ClientWorld | None = None) -> tuple[Context, Population, Array]:
    from .models import client_model

    p = sc.population
    N = p.num_clients
    model = client_model(sc)
    needs_data = hasattr(model, "fm_client_rates")  # a Monte Carlo model personalized on samples (sim/mlp.py)
    kctx, kshift, kn, kstat, kbyz, kood, kdata = jax.random.split(key, 7)
    ctx = make_context(sc, kctx)
    world = ctx.world
    base1 = base_client(world)
    base = jax.tree.map(lambda a: jnp.broadcast_to(a, (N,) + a.shape), base1)
    if clients is None:
        shift = from_scenario(world, sc)
        shifted = jax.vmap(shift)(base, jax.random.split(kshift, N))
    else:  # supplied by the user (check_clients): they replace the shift families
        shifted = clients
    f = jnp.asarray(sc.shifts.strength, jnp.float32)
    if sc.shifts.strength_spread == "beta":  # every client at its own strength s_c (client_strengths)
        shifted = jax.vmap(interpolate)(base, shifted, client_strengths(sc, jax.random.fold_in(kshift, 1)))
    else:
        shifted = jax.tree.map(
            lambda full, part: jnp.where(f == 1.0, full, part), shifted, interpolate(base, shifted, f)
        )
    M, m = jax.vmap(client_moments, in_axes=(None, 0))(world, shifted)
    n = sample_sizes(sc, kn)
    X = y = mask = None
    if p.mode == "logistic" or needs_data:  # materialized samples (the logistic loss, or a model trained on data)
        X, y, _ = jax.vmap(sample_data, in_axes=(0, 0, None, None))(
            jax.random.split(kdata, N), shifted, world, p.max_samples
        )
        mask = (jnp.arange(p.max_samples)[None, :] < jnp.minimum(n, p.max_samples)[:, None]).astype(jnp.float32)
        cnt = mask.sum(1)
        M_train = jnp.einsum("nk,nki,nkj->nij", mask, X, X) / cnt[:, None, None]
        m_train = jnp.einsum("nk,nk,nki->ni", mask, y, X) / cnt[:, None]
    elif p.mode == "finite":
        M_train, m_train = jax.vmap(sample_statistics, in_axes=(0, 0, None, 0))(
            jax.random.split(kstat, N), shifted, world, n
        )
    else:
        M_train, m_train = M, m
    prob, P, b = client_maps(M_train, m_train, ctx.teacher, ctx.Pi, sc)
    lam_max = max_curvature(prob.H, ctx.Pi, curvature=0.25 if p.mode == "logistic" else 1.0)
    n_byz = int(sc.federation.byzantine_fraction * N)
    byz = jnp.argsort(jax.random.uniform(kbyz, (N,))) < n_byz
    ood_panel = jax.random.choice(kood, N, (p.ood_subset,), replace=False)
    if needs_data:
        fm_acc = model.fm_client_rates(ctx, shifted, jnp.arange(N))[0]
    else:
        fm_acc = jax.vmap(accuracy, in_axes=(None, 0, None))(ctx.theta0, shifted, world)
    return (
        ctx,
        Population(
            base=base,
            shifted=shifted,
            M=M,
            m=m,
            M_train=M_train,
            m_train=m_train,
            n=n,
            weight=n / n.mean(),
            q=participation(sc, shifted),
            byzantine=byz,
            ood_panel=ood_panel,
            fm_acc=fm_acc,
            P=P,
            b=b,
            X=X,
            y=y,
            mask=mask,
        ),
        lam_max,
    )


def fm_fairness(sc: Scenario, ctx: Context, pop: Population) -> Array:
    """The FM's fairness-collapse reference on this population (``metrics.fm_fairness``
    of ``sc.thresholds.fairness_metric``): the group accuracy gap, or client accuracy
    spread, of theta_0 on the clients' shifted distributions.

    Args:
        sc: the scenario (or a traced view).
        ctx: the shared world and FM.
        pop: the clients.

    Returns:
        () the FM's fairness measure.
    """
    from .models import client_model

    model = client_model(sc)
    if hasattr(model, "fm_client_rates"):  # Monte Carlo: the FM's rates on the clients' held-out draws
        acc, group_acc = model.fm_client_rates(ctx, pop.shifted, jnp.arange(pop.n.shape[0]))
        mass = pop.shifted.pi.sum(1)
        return mt.fairness_value(sc.thresholds.fairness_metric, acc, group_acc, mass, pop.weight)
    return mt.fm_fairness(sc.thresholds.fairness_metric, ctx.theta0, pop.shifted, pop.weight, ctx.world, pop.fm_acc)
