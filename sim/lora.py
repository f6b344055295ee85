"""A frozen nonlinear FM backbone with a trainable low-rank adapter and head
(``model.kind = "lora"``): the setting of FedFMP, parameter-efficient adapters
personalized on private data and aggregated.

The model is

    f(x) = w^T act((W + B A) x + b) + c,

with the backbone (W, b) of ``model.width`` hidden units, the adapter A (r x d) and
B (width x r) of rank r = ``model.rank``, and the head (w, c). It is
:class:`sim.mlp.MLPModel` with another parameter layout, so the FM's pretraining, the
optax personalization on samples and every Monte Carlo metric with its standard error
are the MLP's:

* **The FM** pretrains the backbone and the head on the MLP's objective (P0 with r0,
  the probe-refusal term, the ridge) with the adapter at its initialization: A from a
  fixed key (LeCun normal), B = 0, so BA = 0 and the FM is the backbone and its head.
  After pretraining the backbone is frozen: it is the FM.
* **Personalization** trains, under rule ``full`` or ``proximal``, the adapter and the
  head; under ``subspace``, the adapter alone (the update lives in the rank-r
  perturbations BA of the backbone); under ``head_only``, the head alone.
* **Aggregation** sends the trained parameters only: the server averages A and B
  separately (as federated LoRA does), so the global adapter's product is not the mean
  of the clients' products BA (the inexactness that Sun et al. 2024 remove by freezing
  A); the frozen backbone never leaves a client and no DP noise moves it.

References:
    Hu et al. (2022), LoRA: Low-Rank Adaptation of Large Language Models, ICLR.
    Zhang et al. (2024), Towards Building the Federated GPT: Federated Instruction
    Tuning (FedIT), ICASSP.
    Sun, Li, Ding, Li (2024), Improving LoRA in Privacy-preserving Federated Learning,
    ICLR.
"""

from __future__ import annotations

from functools import cached_property

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from .mlp import ACTIVATIONS, MLPModel, _eye_init

#: The flax submodules and parameters by role.
BACKBONE, ADAPTER, HEAD = ("hidden",), ("adapter_down", "adapter_up"), ("head",)


class LoRAReadout(nn.Module):
    """f(x) = w^T act((W + B A) x + b) + c: a one-hidden-layer backbone (W, b) with a
    rank-``rank`` adapter (A ``adapter_down`` (d, r), B ``adapter_up`` (r, width); B = 0
    at initialization) and a linear head."""

    width: int
    activation: str
    rank: int
    identity_init: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = _eye_init if self.identity_init else nn.initializers.lecun_normal()
        down = self.param("adapter_down", nn.initializers.lecun_normal(), (x.shape[-1], self.rank))
        up = self.param("adapter_up", nn.initializers.zeros, (self.rank, self.width))
        h = nn.Dense(self.width, kernel_init=init, name="hidden")(x) + (x @ down) @ up
        return nn.Dense(1, name="head")(ACTIVATIONS[self.activation](h))[..., 0]


class LoRAModel(MLPModel):
    """The frozen backbone with a LoRA adapter and head (module docstring): a
    ``ClientModel`` whose metrics are Monte Carlo estimates."""

    id = "lora"
    description = (
        "frozen flax backbone (the FM) with a trainable rank-r adapter and head; optax personalization "
        "on samples, Monte Carlo metrics with SE"
    )

    @cached_property
    def module(self) -> LoRAReadout:
        """The flax module of the bound scenario's ``model`` section."""
        m = self.sc.model
        return LoRAReadout(m.width, m.activation, m.rank, m.hidden_init == "identity")

    def _frozen(self, name: str, rule: str | None) -> bool:
        """The FM's pretraining moves the backbone (unless ``model.hidden = "frozen"``) and
        the head; personalization moves the adapter and the head (``subspace``: the adapter,
        ``head_only``: the head), never the backbone."""
        if rule is None:
            return name in ADAPTER or (name in BACKBONE and self.sc.model.hidden == "frozen")
        if name in BACKBONE:
            return True
        return (rule == "subspace" and name in HEAD) or (rule == "head_only" and name in ADAPTER)

    def adapter_product(self, theta: Array) -> Array:
        """The adapter's change of the backbone's kernel as flax stores kernels, (in, out):
        ``adapter_down @ adapter_up`` = (B A)^T, (d, width).

        Args:
            theta: (D,) parameters.

        Returns:
            (d, width) the kernel perturbation.
        """
        p = self.unravel(theta)["params"]
        return jnp.asarray(p["adapter_down"]) @ jnp.asarray(p["adapter_up"])
