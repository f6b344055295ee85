"""Client models: what a client personalizes, what it deploys, and the metrics of a
deployed model, behind one protocol the engine calls (``scenario.model.kind``).

The engine's round (``sim/federate.py``) knows a model only as a parameter vector
theta in R^D: it averages, clips and noises differences of such vectors. Everything
that reads a parameter vector as a predictor goes through a :class:`ClientModel`:

* ``personalize(sc, ctx, pop, theta_g, t)``: every client's local personalization of
  the global model theta_g in round t, and the distribution it is deployed on;
* ``client_metrics(sc, ctx, block, theta_c, cw, panel)``: the per-client metrics of
  the deployed models that the modes pool (``sim/ground_truth.py``);
* ``global_metrics(theta, world)``: the metrics of one model the server (or the
  auditor) evaluates: the FM, the global model.

``exact`` says whether the metrics are closed forms (no standard error) or Monte Carlo
estimates. :class:`LinearModel` is the stylized world's model: a (d + 1) readout
theta = (w, b) on Gaussian class-conditional features, personalized by the affine map
theta_c = P_c theta_g + b_c of K local gradient steps (``sim/personalize.py``; or by
logistic gradient descent on sampled data), with every metric in closed form
(``sim/metrics.py``). A plugin adds a model with
``silentfail.plugins.register_client_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax import Array

from . import metrics as mt
from . import scale
from .distributed import process_count
from .registry import check_new_id
from .world import ClientWorld, World, alignment_score, client_moments

if TYPE_CHECKING:
    from .ground_truth import ClientBlock, Panel
    from .population import Context, Population
    from .scenario import Scenario


class GlobalMetrics(NamedTuple):
    """The metrics of one model (the FM or the global model) on P0 and the probe world."""

    alignment: Array  # () refusal rate on the harmful probe (world.alignment_score)
    p0_acc: Array  # () accuracy on P0
    group_acc_p0: Array  # (G,) per-group accuracy on P0
    spurious_weight: Array  # () weight on the spurious feature


@runtime_checkable
class ClientModel(Protocol):
    """The engine's seam for client models (see the module docstring)."""

    id: str
    description: str
    exact: bool

    def personalize(
        self, sc: Scenario, ctx: Context, pop: Population, theta_g: Array, t: Array
    ) -> tuple[Array, ClientWorld]:
        """Every client's deployed model this round and the distribution it faces.

        Args:
            sc: the scenario.
            ctx: the world, the FM and the teacher.
            pop: the clients (a block of them, leading axis client).
            theta_g: (D,) the global model.
            t: the round.

        Returns:
            (theta_c (n, D), the clients' distributions this round).
        """
        ...

    def client_metrics(
        self, sc: Scenario, ctx: Context, block: ClientBlock, theta_c: Array, cw: ClientWorld, panel: Panel
    ) -> dict[str, Array]:
        """The per-client metrics of the deployed models (the keys
        ``ground_truth.round_metrics`` pools).

        Args:
            sc: the scenario.
            ctx: the shared world and FM.
            block: the block's clients.
            theta_c: (n, D) deployed models.
            cw: their distributions.
            panel: the OOD panel this round.

        Returns:
            ``{name: (n, ...)}``.
        """
        ...

    def global_metrics(self, theta: Array, world: World) -> GlobalMetrics:
        """The metrics of one model.

        Args:
            theta: (D,) the model.
            world: the shared world.

        Returns:
            GlobalMetrics.
        """
        ...


class LinearModel:
    """The stylized world's linear readout, every metric in closed form (see the module
    docstring). Its methods are the engine's computations of the linear world,
    unchanged: a run with it is the engine's run."""

    id = "linear"
    description = "linear readout (w, b) on the FM's features; closed-form personalization and metrics"
    exact = True

    def personalize(
        self, sc: Scenario, ctx: Context, pop: Population, theta_g: Array, t: Array
    ) -> tuple[Array, ClientWorld]:
        """theta_c = P_c theta_g + b_c (K local steps in closed form) on the clients'
        distributions, drifted to round t under temporal drift; in logistic mode K
        steps of logistic gradient descent on each client's sample.

        Args:
            sc: the scenario.
            ctx: the world, the FM and the teacher.
            pop: the clients (their maps P_c, b_c, or their data in logistic mode).
            theta_g: (D,) the global model.
            t: the round (for the temporal drift).

        Returns:
            (theta_c (n, D), the clients' distributions this round).
        """
        from .personalize import client_maps, logistic_personalize
        from .shifts import drift_strength, interpolate

        if sc.shifts.temporal.kind != "none":
            cw = interpolate(pop.base, pop.shifted, drift_strength(sc, t))
            M, m = jax.vmap(client_moments, in_axes=(None, 0))(ctx.world, cw)
            _, P, b = client_maps(M, m, ctx.teacher, ctx.Pi, sc)
        else:
            cw, P, b = pop.shifted, pop.P, pop.b
        if sc.population.mode == "logistic":
            theta_c = jax.vmap(logistic_personalize, in_axes=(None, 0, 0, 0, None, None, None))(
                theta_g, pop.X, pop.y, pop.mask, ctx.teacher, ctx.Pi, sc
            )
        else:
            theta_c = jnp.einsum("nij,j->ni", P, theta_g) + b
            if process_count() == 1:  # read by ~30 fusions; see scale.materialized for why not across processes
                theta_c = scale.materialized(theta_c)
        return theta_c, cw

    def client_metrics(
        self, sc: Scenario, ctx: Context, block: ClientBlock, theta_c: Array, cw: ClientWorld, panel: Panel
    ) -> dict[str, Array]:
        """Accuracy, group accuracies, rates, bias amplification, calibration errors,
        alignment, P0 accuracy, out-of-domain drop, spurious weight and the train-test
        gap of every deployed model, in closed form (``sim/metrics.py``).

        Args:
            sc: the scenario.
            ctx: the shared world and FM.
            block: the block's clients.
            theta_c: (n, D) deployed models.
            cw: their distributions.
            panel: the OOD panel this round.

        Returns:
            ``{name: (n, ...)}`` (theta, pi, acc, group_acc, ece_*, alignment, ood, train_test_gap, ...).
        """
        world, pop = ctx.world, block.pop
        cm = mt.client_metrics_batch(theta_c, cw, world)
        cal = mt.calibration_batch(cm.cells.mean, cm.cells.sd, cw.pi, ctx.confidence, bins=sc.thresholds.ece_bins)
        p0_c = mt.base_accuracy(theta_c, world)
        acc_other = mt.panel_accuracy(theta_c, panel.world, world)  # (R, n)
        not_self = (panel.index[:, None] != block.index[None, :]).astype(acc_other.dtype)
        ood = mt.out_of_domain_drop(panel.fm_acc[:, None], acc_other, panel.p0_fm, p0_c, not_self)
        if sc.population.mode == "population":  # training statistics are the population's: no gap
            gap = jnp.zeros(theta_c.shape[0])
        else:  # R_c(theta) - R_hat_c(theta), the train-test gap of the squared loss
            gap = 0.5 * jnp.einsum("ni,nij,nj->n", theta_c, pop.M - pop.M_train, theta_c) - jnp.einsum(
                "ni,ni->n", theta_c, pop.m - pop.m_train
            )
        return dict(
            theta=theta_c,
            pi=cw.pi,
            acc=cm.acc,
            group_acc=cm.group_acc,
            group_mass=cm.group_mass,
            tpr=cm.tpr,
            fpr=cm.fpr,
            bias_amp=cm.bias_amp,
            dp_gap=cm.dp_gap,
            eo_gap=cm.eo_gap,
            ece_classwise=cal.classwise,
            ece_top_label=cal.top_label,
            ece_residual=cal.residual.T,
            ece_mid_low=cal.mid_low,
            alignment=alignment_score(theta_c, world),
            p0_acc=p0_c,
            ood=ood,
            spurious_weight=mt.spurious_weight(theta_c, world),
            train_test_gap=gap,
        )

    def global_metrics(self, theta: Array, world: World) -> GlobalMetrics:
        """Refusal rate on the probe, P0 accuracy (overall and per group) and spurious
        weight of one model, in closed form.

        Args:
            theta: (D,) the model.
            world: the shared world.

        Returns:
            GlobalMetrics.
        """
        return GlobalMetrics(
            alignment=alignment_score(theta, world),
            p0_acc=mt.base_accuracy(theta, world),
            group_acc_p0=mt.group_accuracy_p0(theta, world),
            spurious_weight=mt.spurious_weight(theta, world),
        )

    def foundation(self, sc: Scenario, world: World) -> Array:
        """theta_0 in closed form (``world.fm_theta``).

        Args:
            sc: the scenario.
            world: the world.

        Returns:
            (D,) theta_0.
        """
        from .world import fm_theta

        return fm_theta(world, sc)

    def confidence(self, sc: Scenario, world: World, theta0: Array) -> mt.Confidence:
        """Platt scaling of the FM's Gaussian cell scores on P0 (``metrics.fit_confidence``).

        Args:
            sc: the scenario.
            world: the world.
            theta0: the FM.

        Returns:
            The FM's confidence map.
        """
        from .world import base_client

        return mt.fit_confidence(mt.cell_scores(theta0, base_client(world), world), world.pi0)

    def direction(self, ctx: Context, e: Array) -> Array:
        """A feature direction as a parameter direction, [e; 0] (``world.param_direction``).

        Args:
            ctx: the context.
            e: (d,) a feature direction.

        Returns:
            (D,) [e; 0].
        """
        from .world import param_direction

        return param_direction(e)

    def __repr__(self) -> str:
        return "LinearModel()"


#: The linear model: the hooks (``foundation``, ``confidence``, ``direction``) of a plugin
#: model that defines none of its own.
LINEAR = LinearModel()


def param_directions(sc: Scenario, ctx: Context) -> tuple[Array, Array]:
    """The alignment and spurious directions of the world in the client model's parameter
    space (its ``direction`` hook): what the crafted Byzantine updates move along and
    what a server that reads updates projects them on.

    Args:
        sc: the scenario.
        ctx: the context (world, FM).

    Returns:
        (alignment direction (D,), spurious direction (D,)).
    """
    direction = hook(client_model(sc), "direction")
    return direction(ctx, ctx.world.e_align), direction(ctx, ctx.world.e_spu)


def hook(model: Any, name: str) -> Any:
    """``model``'s method ``name``, or the linear readout's where the model has none (a
    plugin model on the linear parameter vector needs only the protocol's methods).

    Args:
        model: a client model.
        name: ``foundation``, ``confidence`` or ``direction``.

    Returns:
        The bound method.
    """
    return getattr(model, name, getattr(LINEAR, name))


#: The registered client models by id (``scenario.model.kind`` names one).
CLIENT_MODELS: dict[str, Any] = {}
#: The models the package ships.
BUILTIN_MODELS = ("linear", "mlp", "lora")


def register_client_model(model: ClientModel) -> ClientModel:
    """Add a client model to :data:`CLIENT_MODELS`.

    Args:
        model: an object with the :class:`ClientModel` attributes and methods and a new id.

    Returns:
        The model.

    Raises:
        ValueError: the id is taken or not an identifier, or a method is missing.
    """
    missing = [
        a
        for a in ("id", "description", "exact", "personalize", "client_metrics", "global_metrics")
        if not hasattr(model, a)
    ]
    if missing:
        raise ValueError(f"a client model needs {', '.join(missing)} (the ClientModel protocol of sim/models.py)")
    check_new_id("client model", model.id, CLIENT_MODELS)
    CLIENT_MODELS[model.id] = model
    return model


register_client_model(LINEAR)


def _register_mlp() -> None:
    from .lora import LoRAModel  # flax: imported here, after the protocol's types exist
    from .mlp import MLPModel

    register_client_model(MLPModel())
    register_client_model(LoRAModel())


_register_mlp()


def client_model(sc: Scenario) -> ClientModel:
    """The client model ``sc.model.kind`` names.

    Args:
        sc: the scenario.

    Returns:
        The registered model (bound to ``sc`` when it has a ``bind`` method: a model
        whose parameter layout depends on the scenario, ``sim/mlp.py``).

    Raises:
        KeyError: naming the unknown model and the registered ones.
    """
    try:
        model = CLIENT_MODELS[sc.model.kind]
    except KeyError:
        raise KeyError(f"unknown client model {sc.model.kind!r}; registered: {', '.join(CLIENT_MODELS)}") from None
    return model.bind(sc) if hasattr(model, "bind") else model
