"""A nonlinear client model: a flax MLP readout on the FM's features (``model.kind =
"mlp"``), personalized with optax on each client's sample, every metric by Monte Carlo
with a standard error.

The model is f_theta(x) = w_2^T act(W_1 x + b_1) + b_2 (``model.width`` hidden units,
``model.activation``); theta is the flat vector of its flax parameters
(``jax.flatten_util.ravel_pytree``), so the federation (clipping, noise, secure sums,
the server optimizer) handles it as it handles the linear readout.

* **The FM** theta_0 minimizes, by ``model.pretrain_steps`` steps of optax's Adam on
  ``model.pretrain_samples`` draws of P0 with the FM's spurious correlation r0 and as
  many probe requests, the linear FM's objective
  J(theta) = mean 1/2 (f(x) - y)^2 + gamma mean_probe 1/2 (f(x) + 1)^2 + ridge/2 |theta|^2
  (``world.pretraining_objective``). Its draws come from a fixed key: like the linear
  FM, it is the same for every seed.
* **Personalization**: K steps of optax SGD (rate eta) from the global model on the
  client's materialized sample (``population.max_samples`` draws, the first n_c used)
  of the client's loss (squared loss on +-1 labels in ``finite`` mode, the logistic
  loss in ``logistic`` mode) plus lambda/2 |theta - theta_g|^2; rule ``head_only``
  trains the output layer only, and ``model.hidden = "frozen"`` freezes the hidden
  layer everywhere (FM pretraining included).
* **Metrics** on fresh held-out draws, ``model.replicates`` independent replicates of
  ``model.eval_samples`` draws per (label, group) cell (stratified: the cell priors
  are exact, only the cells' rates are estimated): P(yhat = +1 | y, a) gives every rate
  metric (``metrics.rate_metrics``), the binned residuals of the FM's confidence map
  the calibration errors, and the same count of probe draws and of P0 draws (shared
  by every model, so differences between models are paired) the refusal rate and the
  P0 accuracy. The engine pools each replicate over clients into the round's mode
  metrics and reports their mean and standard error sd / sqrt(replicates) (batch
  means: the replicates are independent, so this is the standard error of the mean
  of the replicates' estimates, for any pooling, quantiles included).
* **Spurious weight**: E_P0[grad_x f(x) . e_spu], the mean derivative of the score
  along the spurious direction (for a linear readout, <theta_x, e_spu>).
* **A direction in parameter space** (crafted updates, the server's inspection of
  updates): the gradient at theta_0 of E_P0[f(x + e) - f(x)] restricted to the
  parameters clients send (:meth:`MLPModel.communicated`), normalized; for a linear
  readout it is [e; 0].
* **What is sent**: a client sends, and the server updates, only the parameters its
  rule trains; frozen ones are outside the protocol, so no DP noise moves them.

References:
    Heek et al. (2024), Flax: A neural network library and ecosystem for JAX.
    Kohavi (1995) and Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 6
    (batch-means standard errors).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.flatten_util import ravel_pytree

from . import metrics as mt
from .models import GlobalMetrics
from .realdata import stratified_cells
from .world import ClientWorld, World, Y, prior

if TYPE_CHECKING:
    from .ground_truth import ClientBlock, Panel
    from .population import Context, Population
    from .scenario import Scenario

#: The activations ``model.activation`` names.
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "identity": lambda h: h}

#: Keys of the fixed draws that do not depend on the seed: the FM's pretraining data
#: and the shared P0 and probe evaluation sets (the auditor's).
FM_KEY, P0_KEY, PROBE_KEY = 20260101, 20260102, 20260103

#: Clients per batch of the per-client Monte Carlo work (``jax.lax.map``): bounds the
#: hidden activations a block holds at once.
EVAL_BATCH = 64


def _eye_init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """The identity-like kernel: I_(d x width) (``model.hidden_init = "identity"``)."""
    return jnp.eye(*shape, dtype=dtype)


class MLPReadout(nn.Module):
    """f(x) = w_2^T act(W_1 x + b_1) + b_2: one hidden layer of ``width`` units."""

    width: int
    activation: str
    identity_init: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = _eye_init if self.identity_init else nn.initializers.lecun_normal()
        h = nn.Dense(self.width, kernel_init=init, name="hidden")(x)
        return nn.Dense(1, name="head")(ACTIVATIONS[self.activation](h))[..., 0]


def cell_draws(key: Array, cw: ClientWorld, chol: Array, shape: tuple[int, ...]) -> Array:
    """Draws x of every (label, group) cell of a distribution: x = mu_(y,a) + sqrt(s) L_a z.

    Args:
        key: a JAX PRNG key.
        cw: the distribution (cell means (2, G, d), covariance scale s).
        chol: (G, d, d) Cholesky factors L_a of the world's Sigma_a.
        shape: the leading shape (R, n) of the draws per cell.

    Returns:
        (R, 2, G, n, d) draws.
    """
    R, n = shape
    G, d = chol.shape[0], chol.shape[-1]
    z = jax.random.normal(key, (R, 2, G, n, d))
    return cw.mu[None, :, :, None, :] + jnp.sqrt(cw.scale) * jnp.einsum("aij,ryanj->ryani", chol, z)


def probe_draws(key: Array, world: World, shape: tuple[int, ...]) -> Array:
    """Draws of the probe world N(mu_h, Sigma_h).

    Args:
        key: a JAX PRNG key.
        world: the world (probe mean and covariance).
        shape: the leading shape.

    Returns:
        (*shape, d) draws.
    """
    d = world.mu_h.shape[0]
    L = jnp.linalg.cholesky(world.Sigma_h)
    return world.mu_h + jax.random.normal(key, shape + (d,)) @ L.T


def fit_confidence_draws(s: Array, y01: Array, w: Array, iters: int = 50) -> mt.Confidence:
    """Platt scaling from weighted draws: (alpha, beta) minimizing sum w log loss of
    sigmoid(alpha s + beta) against y, by Newton's method (``metrics.fit_confidence``
    for a score without a Gaussian closed form).

    Args:
        s: (n,) scores.
        y01: (n,) labels in {0, 1}.
        w: (n,) weights (the cells' priors over their draws).
        iters: Newton iterations.

    Returns:
        Confidence(alpha, beta).
    """
    X = jnp.stack([s, jnp.ones_like(s)], axis=1)

    def newton(ab, _):
        p = jax.nn.sigmoid(X @ ab)
        grad = X.T @ (w * (p - y01))
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-9 * jnp.eye(2)
        return ab - jnp.linalg.solve(hess, grad), None

    ab, _ = jax.lax.scan(newton, jnp.array([1.0, 0.0]), None, length=iters)
    return mt.Confidence(ab[0], ab[1])


def binned_residuals(p: Array, y01: Array, w: Array, bins: int) -> tuple[Array, Array]:
    """The signed calibration residuals of draws: e_b = sum w (y - p) 1{p in b} per bin of
    p, and the residual of the lower half [a, 1/2) of the middle bin (odd ``bins``; else
    0), the Monte Carlo counterparts of ``metrics.calibration_batch``'s.

    Args:
        p: (..., n) confidences.
        y01: (..., n) labels in {0, 1} (broadcast against p).
        w: (..., n) weights summing to 1 over the draws (broadcast).
        bins: the number B of equal bins of p.

    Returns:
        (residual (..., B), mid_low (...)).
    """
    r = w * (y01 - p)
    b = jnp.clip(jnp.floor(p * bins).astype(jnp.int32), 0, bins - 1)
    residual = jnp.einsum("...n,...nb->...b", r, jax.nn.one_hot(b, bins, dtype=r.dtype))
    if bins % 2 == 0:
        return residual, jnp.zeros(residual.shape[:-1], residual.dtype)
    a_mid = (bins // 2) / bins
    return residual, jnp.sum(r * ((p >= a_mid) & (p < 0.5)), axis=-1)


def positive_share(s: Array, temperature: float | None = None) -> Array:
    """1{s > 0}, or its smooth surrogate sigmoid(s / temperature) (differentiable in s).

    Args:
        s: scores.
        temperature: None for the indicator, else the sigmoid's temperature.

    Returns:
        Values in [0, 1], the shape of s.
    """
    return (s > 0).astype(s.dtype) if temperature is None else jax.nn.sigmoid(s / temperature)


def positive_rates(s: Array) -> Array:
    """P(yhat = +1 | y, a) per cell: the share of positive scores over the last axis.

    Args:
        s: (..., 2, G, n) scores of stratified draws.

    Returns:
        (..., 2, G).
    """
    return jnp.mean(s > 0, axis=-1)


def accuracy_of(pos: Array, pi: Array) -> Array:
    """The accuracy sum_(y,a) pi(y, a) P(yhat = y | y, a) of cell positive rates.

    Args:
        pos: (..., 2, G) P(yhat = +1 | y, a).
        pi: (2, G) the cell priors.

    Returns:
        (...) the accuracy.
    """
    return jnp.einsum("...a,a->...", 1.0 - pos[..., 0, :], pi[0]) + jnp.einsum("...a,a->...", pos[..., 1, :], pi[1])


def cell_metrics(pos: Array, pi: Array) -> mt.ClientMetrics:
    """``metrics.rate_metrics`` of cell positive rates, the linear engine's formulas on
    Monte Carlo rates; the leading axes are flattened for it and restored.

    Args:
        pos: (..., 2, G) P(yhat = +1 | y, a).
        pi: (..., 2, G) the cell priors.

    Returns:
        ClientMetrics with leading axes (...) (``cells`` None).
    """
    lead = pos.shape[:-2]
    flat = lambda a: jnp.moveaxis(a.reshape((-1,) + a.shape[-2:]), 0, -1)  # noqa: E731 - (2, G, prod(lead))
    correct = jnp.stack([1.0 - pos[..., 0, :], pos[..., 1, :]], axis=-2)
    cm = mt.rate_metrics(flat(pos), flat(correct), flat(pi))
    return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), cm)


def masked_descent(objective, theta: Array, opt: optax.GradientTransformation, mask: Array, steps: int) -> Array:
    """``steps`` steps of the optax optimizer ``opt`` on ``objective`` from ``theta``,
    the gradient masked to the trainable parameters (``lax.scan``).

    Args:
        objective: theta -> () the loss.
        theta: (D,) the start.
        opt: the optax transformation (Adam for the FM, SGD for personalization).
        mask: (D,) 0/1, the trainable parameters.
        steps: the number of steps.

    Returns:
        (D,) the parameters after the steps.
    """

    def step(carry, _):
        th, state = carry
        updates, state = opt.update(jax.grad(objective)(th) * mask, state, th)
        return (optax.apply_updates(th, updates), state), None

    (theta, _), _ = jax.lax.scan(step, (theta, opt.init(theta)), None, length=steps)
    return theta


class MLPModel:
    """The flax MLP readout (module docstring): a ``ClientModel`` whose metrics are
    Monte Carlo estimates. ``bind(sc)`` gives the model of a scenario."""

    id = "mlp"
    description = "flax MLP readout on the FM's features; optax personalization on samples, Monte Carlo metrics with SE"
    exact = False

    def __init__(self, sc: Scenario | None = None, temperature: float | None = None):
        self.sc = sc
        self.temperature = temperature

    def smoothed(self, temperature: float) -> MLPModel:
        """The same model whose metrics count a positive score by sigmoid(s / temperature)
        instead of 1{s > 0}: differentiable surrogates of the Monte Carlo metrics on the
        same draws (the gradients of the interventions, ``sim/intervention.py``).

        Args:
            temperature: the sigmoid's temperature (score units).

        Returns:
            The smoothed model.
        """
        return type(self)(self.sc, temperature)

    def _above(self, s: Array) -> Array:
        """1{s > 0} per draw, or its smooth surrogate (:meth:`smoothed`)."""
        return positive_share(s, self.temperature)

    def bind(self, sc: Scenario) -> MLPModel:
        """The model of scenario ``sc`` (its width, activation and evaluation sizes).

        Args:
            sc: the scenario.

        Returns:
            An MLPModel bound to ``sc``.
        """
        return type(self)(sc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()" if self.sc is None else f"{type(self).__name__}({self.sc.model!r})"

    # --- the parameter vector -------------------------------------------------------------
    @cached_property
    def module(self) -> MLPReadout:
        """The flax module of the bound scenario's ``model`` section."""
        m = self.sc.model
        return MLPReadout(m.width, m.activation, m.hidden_init == "identity")

    @cached_property
    def _template(self):
        """Zero parameters (concrete NumPy arrays: cached across traces, never a tracer)."""
        shapes = jax.eval_shape(
            self.module.init, jax.random.key(0), jax.ShapeDtypeStruct((self.sc.world.d,), jnp.float32)
        )
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    @cached_property
    def _unravel(self):
        with jax.ensure_compile_time_eval():
            return ravel_pytree(self._template)[1]

    @property
    def dim(self) -> int:
        """D, the length of the parameter vector."""
        return sum(a.size for a in jax.tree.leaves(self._template))

    def unravel(self, theta: Array):
        """The flax parameters of a flat vector.

        Args:
            theta: (D,) parameters.

        Returns:
            The parameter PyTree.
        """
        return self._unravel(theta)

    def score(self, theta: Array, x: Array) -> Array:
        """f_theta(x).

        Args:
            theta: (D,) parameters.
            x: (..., d) features.

        Returns:
            (...) scores.
        """
        return self.module.apply(self.unravel(theta), x)

    def _frozen(self, name: str, rule: str | None) -> bool:
        """Whether the flax submodule ``name`` stays fixed in phase ``rule`` (None: the FM's
        pretraining; else the personalization rule)."""
        if name == "hidden":
            return self.sc.model.hidden == "frozen" or rule == "head_only"
        return False

    def trainable(self, rule: str | None) -> Array:
        """The mask of the parameters a gradient step moves in a phase: the FM's pretraining
        (``rule`` None) or personalization under ``rule`` (all, or the output layer only
        under ``head_only`` or with a frozen hidden layer).

        Args:
            rule: None for the FM's pretraining, else ``personalization.rule``.

        Returns:
            (D,) 0/1 mask.
        """
        tree = jax.tree_util.tree_map_with_path(
            lambda path, a: np.full(a.shape, 0.0 if self._frozen(path[1].key, rule) else 1.0, np.float32),
            self._template,
        )
        return jnp.asarray(np.concatenate([a.ravel() for a in jax.tree.leaves(tree)]))

    def communicated(self) -> Array:
        """The parameters a client sends and the server updates: those the personalization
        rule trains. The others are not part of the protocol, so neither local nor central
        DP noise nor the server optimizer ever moves them (for a LoRA client, the frozen
        backbone).

        Returns:
            (D,) 0/1 mask.
        """
        return self.trainable(self.sc.personalization.rule)

    def param_names(self) -> list[str]:
        """Names of the parameter vector's entries (the trace's ``param`` coordinate).

        Returns:
            ``layer.leaf[index]`` per entry.
        """
        names = []
        for path, a in jax.tree_util.tree_flatten_with_path(self._template)[0]:
            stem = ".".join(str(getattr(k, "key", k)) for k in path[1:])
            names += [f"{stem}[{i}]" for i in range(math.prod(a.shape))]
        return names

    # --- the FM --------------------------------------------------------------------------
    def foundation(self, sc: Scenario, world: World) -> Array:
        """theta_0 by Adam on the pretraining objective (module docstring).

        Args:
            sc: the scenario (``fm``, ``model.pretrain_*``).
            world: the world.

        Returns:
            (D,) theta_0.
        """
        from .population import sample_data

        m = sc.model
        k_init, k_p0, k_probe = jax.random.split(jax.random.key(FM_KEY), 3)
        theta, _ = ravel_pytree(self.module.init(k_init, jnp.zeros(sc.world.d)))
        pi_fm = prior(world.pi0.sum(axis=0), sc.fm.r0, world.signs)
        clean = world._replace(flip=None)  # the FM's pretraining labels are clean
        X, y, _ = sample_data(
            k_p0, ClientWorld(pi_fm, world.mu, jnp.asarray(1.0)), clean, m.pretrain_samples, split="public"
        )
        Xh = probe_draws(k_probe, world, (m.pretrain_samples,))
        g, ridge, mask = sc.fm.alignment_weight, sc.fm.ridge, self.trainable(None)

        def objective(th):
            fit = 0.5 * jnp.mean((self.score(th, X[:, :-1]) - y) ** 2)
            refuse = 0.5 * jnp.mean((self.score(th, Xh) + 1.0) ** 2)
            return fit + g * refuse + 0.5 * ridge * jnp.sum(th**2)

        return masked_descent(objective, theta, optax.adam(m.pretrain_lr), mask, m.pretrain_steps)

    def confidence(self, sc: Scenario, world: World, theta0: Array) -> mt.Confidence:
        """Platt scaling of the FM's score on the shared P0 draws (:func:`fit_confidence_draws`).

        Args:
            sc: the scenario.
            world: the world.
            theta0: the FM.

        Returns:
            The FM's confidence map.
        """
        x = self._p0_draws(world)  # (R, 2, G, n, d)
        s = self.score(theta0, x)
        y01 = jnp.broadcast_to(jnp.array([0.0, 1.0])[None, :, None, None], s.shape)
        w = jnp.broadcast_to(world.pi0[None, :, :, None], s.shape) / (s.shape[0] * s.shape[-1])
        return fit_confidence_draws(s.reshape(-1), y01.reshape(-1), w.reshape(-1))

    # --- evaluation draws ----------------------------------------------------------------
    def _shape(self) -> tuple[int, int]:
        return self.sc.model.replicates, self.sc.model.eval_samples

    def _chol(self, world: World) -> Array:
        return jnp.linalg.cholesky(world.Sigma)

    def _p0_draws(self, world: World) -> Array:
        return self._own_draws(jax.random.key(P0_KEY), ClientWorld(world.pi0, world.mu, jnp.asarray(1.0)), world)

    def _probe_draws(self, world: World) -> Array:
        R, n = self._shape()
        return probe_draws(jax.random.key(PROBE_KEY), world, (R, 2 * world.mu.shape[1] * n))

    def _own_draws(self, key: Array, cw: ClientWorld, world: World) -> Array:
        """Held-out draws (R, 2, G, n, d) of every cell of ``cw``: Gaussian, or a real
        dataset's private-test images (``sim/realdata.py``)."""
        if world.data is not None:
            return stratified_cells(key, world.data, cw.mu, cw.scale, world.mu, self._shape())
        return cell_draws(key, cw, self._chol(world), self._shape())

    @staticmethod
    def client_keys(ctx: Context, index: Array) -> Array:
        """The keys of the clients' held-out draws (one per client id, from the seed).

        Args:
            ctx: the context (its key).
            index: (n,) client ids.

        Returns:
            (n,) keys.
        """
        return jax.vmap(lambda i: jax.random.fold_in(ctx.key, i))(index)

    # --- ClientModel -----------------------------------------------------------------------
    def personalize(
        self, sc: Scenario, ctx: Context, pop: Population, theta_g: Array, t: Array
    ) -> tuple[Array, ClientWorld]:
        """K steps of optax SGD on each client's sample (module docstring).

        Args:
            sc: the scenario.
            ctx: the world and the FM.
            pop: the clients (their materialized samples X, y, mask).
            theta_g: (D,) the global model.
            t: the round (the clients' distributions do not drift for this model).

        Returns:
            (theta_c (n, D), the clients' distributions).
        """
        p = sc.personalization
        mask_p = self.trainable(p.rule)
        opt = optax.sgd(p.eta)

        def local(x, y, w):
            def loss(th):
                return self.sample_loss(sc, th, x, y, w) + 0.5 * p.lam * jnp.sum((th - theta_g) ** 2)

            return masked_descent(loss, theta_g, opt, mask_p, p.K)

        theta_c = jax.lax.map(lambda a: local(*a), (pop.X[..., :-1], pop.y, pop.mask), batch_size=EVAL_BATCH)
        return theta_c, pop.shifted

    def sample_loss(self, sc: Scenario, theta: Array, x: Array, y: Array, w: Array) -> Array:
        """A client's loss on its sample: the squared loss on +-1 labels (``finite`` mode)
        or the logistic loss (``logistic`` mode), weighted by the sample mask.

        Args:
            sc: the scenario (``population.mode``).
            theta: (D,) parameters.
            x: (n, d) features.
            y: (n,) labels.
            w: (n,) 0/1 weights (the client's first n_c samples).

        Returns:
            () the mean loss.
        """
        f = self.score(theta, x)
        per = jnp.logaddexp(0.0, -y * f) if sc.population.mode == "logistic" else 0.5 * (f - y) ** 2
        return jnp.sum(w * per) / jnp.sum(w)

    def _cell_rates(
        self, theta: Array, x: Array, conf: mt.Confidence, pi: Array, bins: int, flip: Array | None = None
    ) -> dict:
        """Monte Carlo estimates on one distribution's stratified draws ``x`` (R, 2, G, n, d):
        P(yhat = +1 | y, a), the calibration residuals and the squared-loss risk against the
        client's observed labels (flip rates ``flip``), per replicate."""
        s = self.score(theta, x)  # (R, 2, G, n)
        n = s.shape[-1]
        y01 = jnp.array([0.0, 1.0])[None, :, None, None]
        w = jnp.broadcast_to(pi[None, :, :, None] / n, s.shape)
        res, low = binned_residuals(
            conf(s).reshape(s.shape[0], -1),
            jnp.broadcast_to(y01, s.shape).reshape(s.shape[0], -1),
            w.reshape(s.shape[0], -1),
            bins,
        )
        if flip is None:
            risk = jnp.sum(w * 0.5 * (s - Y[None, :, None, None]) ** 2, axis=(1, 2, 3))
        else:  # against the observed labels: E[(s - y~)^2 / 2 | y, a] = s^2 / 2 - (1 - 2 rho_a) y s + 1/2
            ys = (1.0 - 2.0 * flip)[None, None, :, None] * Y[None, :, None, None] * s
            risk = jnp.sum(w * (0.5 * s**2 - ys + 0.5), axis=(1, 2, 3))
        return dict(pos=jnp.mean(self._above(s), axis=-1), residual=res, mid_low=low, risk=risk)

    def _p0_pass(self, theta: Array, world: World) -> tuple[Array, Array]:
        """On the shared P0 draws: the cells' positive rates (R, 2, G) and the spurious
        weight E_P0[grad_x f . e_spu] (R,), one forward pass with its JVP."""
        x = self._p0_draws(world)
        s, ds = jax.jvp(lambda v: self.score(theta, v), (x,), (jnp.broadcast_to(world.e_spu, x.shape),))
        return jnp.mean(self._above(s), axis=-1), jnp.einsum("ryan,ya->r", ds, world.pi0) / ds.shape[-1]

    def _accuracy(self, theta: Array, x: Array, pi: Array) -> Array:
        """(R,) Monte Carlo accuracy on stratified draws x (R, 2, G, n, d) of prior pi."""
        return accuracy_of(jnp.mean(self._above(self.score(theta, x)), axis=-1), pi)

    def client_metrics(
        self, sc: Scenario, ctx: Context, block: ClientBlock, theta_c: Array, cw: ClientWorld, panel: Panel
    ) -> dict[str, Array]:
        """Every per-client metric by Monte Carlo, per replicate (module docstring).

        Args:
            sc: the scenario.
            ctx: the shared world and FM.
            block: the block's clients.
            theta_c: (n, D) deployed models.
            cw: their distributions.
            panel: the OOD panel this round.

        Returns:
            ``{name: (n, R, ...)}`` for every metric, and ``theta`` (n, D).
        """
        world, pop, bins = ctx.world, block.pop, sc.thresholds.ece_bins
        x_probe = self._probe_draws(world)
        panel_keys = self.client_keys(ctx, panel.index)
        x_panel = jax.vmap(self._own_draws, in_axes=(0, 0, None))(panel_keys, panel.world, world)  # (Rp, R, 2, G, n, d)

        def one(args):
            theta, c, key, X, y, w = args
            own = self._cell_rates(theta, self._own_draws(key, c, world), ctx.confidence, c.pi, bins, world.flip)
            pos0, spurious = self._p0_pass(theta, world)
            p0 = accuracy_of(pos0, world.pi0)
            align = jnp.mean(self._above(-self.score(theta, x_probe)), axis=-1)
            other = jax.vmap(self._accuracy, in_axes=(None, 0, 0))(theta, x_panel, panel.world.pi)  # (Rp, R)
            train = jnp.sum(w * 0.5 * (self.score(theta, X[:, :-1]) - y) ** 2) / jnp.sum(w)
            return own, p0, spurious, align, other, train

        keys = self.client_keys(ctx, block.index)
        own, p0, spurious, align, other, train = jax.lax.map(
            one, (theta_c, cw, keys, pop.X, pop.y, pop.mask), batch_size=EVAL_BATCH
        )
        n, R = p0.shape
        pi_r = jnp.broadcast_to(cw.pi[:, None], (n, R) + cw.pi.shape[1:])  # (n, R, 2, G)
        cm = cell_metrics(own["pos"], pi_r)  # (n, R, ...)
        residual, mid_low = own["residual"], own["mid_low"]  # (n, R, B), (n, R)
        not_self = (panel.index[:, None] != block.index[None, :]).astype(p0.dtype)
        ood = jax.vmap(  # per replicate r: other[:, :, r] is (n, Rp)
            lambda a, p: mt.out_of_domain_drop(panel.fm_acc[:, None], a.T, panel.p0_fm, p, not_self),
            in_axes=(2, 1),
            out_axes=1,
        )(other, p0)
        return dict(
            theta=theta_c,
            pi=pi_r,
            acc=cm.acc,
            group_acc=cm.group_acc,
            group_mass=cm.group_mass,
            tpr=cm.tpr,
            fpr=cm.fpr,
            bias_amp=cm.bias_amp,
            dp_gap=cm.dp_gap,
            eo_gap=cm.eo_gap,
            ece_classwise=jnp.abs(residual).sum(-1),
            ece_top_label=mt.top_label_ece(jnp.moveaxis(residual, -1, 0), mid_low),
            ece_residual=residual,
            ece_mid_low=mid_low,
            alignment=align,
            p0_acc=p0,
            ood=ood,
            spurious_weight=spurious,
            train_test_gap=own["risk"] - train[:, None],
        )

    def global_replicates(self, theta: Array, world: World) -> GlobalMetrics:
        """The metrics of one model per replicate, on the shared P0 and probe draws.

        Args:
            theta: (D,) the model.
            world: the world.

        Returns:
            GlobalMetrics with a leading replicate axis (R,).
        """
        pos, spurious = self._p0_pass(theta, world)
        cm = cell_metrics(pos, jnp.broadcast_to(world.pi0, pos.shape))
        return GlobalMetrics(
            alignment=jnp.mean(self._above(-self.score(theta, self._probe_draws(world))), axis=-1),
            p0_acc=cm.acc,
            group_acc_p0=cm.group_acc,
            spurious_weight=spurious,
        )

    def global_metrics(self, theta: Array, world: World) -> GlobalMetrics:
        """:meth:`global_replicates` averaged over the replicates.

        Args:
            theta: (D,) the model.
            world: the world.

        Returns:
            GlobalMetrics.
        """
        return jax.tree.map(lambda a: a.mean(0), self.global_replicates(theta, world))

    # --- the FM's references on the clients ----------------------------------------------
    def fm_client_rates(self, ctx: Context, shifted: ClientWorld, index: Array) -> tuple[Array, Array]:
        """The FM's Monte Carlo accuracy and group accuracies on each client's held-out draws
        (replicates averaged).

        Args:
            ctx: the context (FM, keys).
            shifted: (N, ...) the clients' distributions.
            index: (N,) their ids.

        Returns:
            (acc (N,), group_acc (N, G)).
        """
        world = ctx.world

        def one(args):
            c, key = args
            return positive_rates(self.score(ctx.theta0, self._own_draws(key, c, world))).mean(0)  # (2, G)

        pos = jax.lax.map(one, (shifted, self.client_keys(ctx, index)), batch_size=EVAL_BATCH)  # (N, 2, G)
        cm = cell_metrics(pos, shifted.pi)
        return cm.acc, cm.group_acc

    def direction(self, ctx: Context, e: Array) -> Array:
        """The parameter direction of a feature direction e: the normalized gradient at
        theta_0 of E_P0[f(x + e) - f(x)] (module docstring).

        Args:
            ctx: the context (FM, world).
            e: (d,) a unit feature direction.

        Returns:
            (D,) a unit parameter direction.
        """
        x = self._p0_draws(ctx.world).reshape(-1, ctx.world.mu.shape[-1])
        g = jax.grad(lambda th: jnp.mean(self.score(th, x + e) - self.score(th, x)))(ctx.theta0)
        g = g * self.communicated()  # a client can move only what it sends
        return g / jnp.maximum(jnp.linalg.norm(g), 1e-30)
