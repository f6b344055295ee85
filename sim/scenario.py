"""``Scenario``: the validated, immutable configuration of one simulated world
(paper/main.tex, The stylized model), loadable from TOML, with named presets.

Every field is documented (``Field(description=...)``) and bounded; a bad value is
rejected with a :class:`ScenarioError` whose message names the field path and the
allowed range, e.g. ``personalization.eta: Input should be greater than 0 (got -1)``.
Inside ``jit`` the scenario's numbers are compile-time constants, except the fields a
sweep varies, which a :class:`~silentfail.sim.config.Config` hands to the engine as
traced JAX values (one compiled program for a whole grid).
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .registry import BUILTIN_MODES, DETECTORS, MODE_REGISTRY, MODES

#: The largest magnitude of a number in a scenario (squares stay finite in float32).
MAX_MAGNITUDE = 1e15


class ScenarioError(ValueError):
    """An invalid scenario: the message names the field and the allowed range."""


Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Corr = Annotated[float, Field(ge=-1.0, le=1.0)]
Pos = Annotated[float, Field(gt=0.0)]
NonNeg = Annotated[float, Field(ge=0.0)]


class _Section(BaseModel):
    """A section of the configuration: frozen, no unknown fields, finite numbers, and
    strict types (``rounds = true``, ``rounds = "30"`` or ``secure_aggregation = 1`` are
    errors naming the field, never coerced; an int is a valid float)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _off_means_none(cls, data: Any) -> Any:
        """TOML has no null: "off" (or "none") switches off an optional field. TOML and
        JSON arrays are lists: they become the tuples the fields hold."""
        if isinstance(data, dict):
            data = dict(data)
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if field.default is None and isinstance(value, str) and value.lower() in ("off", "none"):
                    data[name] = None
                elif isinstance(value, list):
                    data[name] = tuple(value)
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _magnitude(cls, value: Any) -> Any:
        """Numbers the engine's float32 can carry through products: |x| <= 1e15."""
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and abs(v) > MAX_MAGNITUDE:
                raise ValueError(f"|value| must be <= {MAX_MAGNITUDE:g} (the engine computes in float32), got {v:g}")
        return value


#: The ``world`` fields that shape the Gaussian cells: a real dataset's cells are its images.
GAUSSIAN_CELLS = (
    "core_strength",
    "spurious_strength",
    "group_offset",
    "noise_std",
    "align_noise_std",
    "minority_core_angle",
)


class World(_Section):
    """The base world P0 and the probe world (paper/main.tex, The stylized model).

    Directions: e_0 = mu_core, e_1 = mu_spu, e_2 = group offsets, e_3 = the
    alignment direction u along which the probe distribution lies, e_4 = the direction
    the minority's causal direction rotates toward.
    """

    data: Literal["gaussian", "digits"] = Field(
        "gaussian",
        description="the cells' data: gaussian (the stylized world's Gaussian cells) or digits (scikit-learn's bundled "
        "handwritten digits: real images as the cells, y = digit >= 5, the minority group the heaviest-ink 30%; "
        "sim/realdata.py); real data need model.kind = 'mlp' or 'lora'",
    )
    d: int = Field(16, ge=4, le=512, description="feature dimension of the FM's representation space")
    groups: int = Field(
        2, ge=2, le=8, description="number of protected groups G (the odd groups a = 1, 3, ... are the minority)"
    )
    group_shares: tuple[Prob, ...] | None = Field(
        None, description="P0(a), one per group, summing to 1 (default: 0.7/0.3 for two groups, else uniform)"
    )
    spurious_r: Corr = Field(0.0, description="spurious correlation r of P0: P0(y=+1|a) = (1 + r s_a)/2")
    core_strength: Pos = Field(1.0, description="|mu_core|: the causal signal")
    spurious_strength: NonNeg = Field(1.0, description="|mu_spu|: the attribute-tied direction")
    group_offset: float = Field(0.0, description="nu_a = group_offset * (a - mean a) * e_2")
    noise_std: tuple[Pos, ...] | Pos = Field(
        1.0, description="per-group feature noise std (off the alignment direction)"
    )
    align_noise_std: Pos = Field(
        0.1,
        description="std of task features along the alignment direction u: the FM's safety features are nearly silent on benign task data",
    )
    minority_core_angle: float = Field(
        0.0,
        ge=-3.1416,
        le=3.1416,
        description="the causal direction of odd (minority) groups is mu_core rotated by this angle toward e_4: a subpopulation whose best classifier differs",
    )
    probe_strength: Pos = Field(6.0, description="|mu_h|: probe mean along the alignment direction")
    probe_std: Pos = Field(1.0, description="probe feature std (Sigma_h = std^2 I)")

    @model_validator(mode="after")
    def _shapes(self) -> World:
        if self.group_shares is not None:
            if len(self.group_shares) != self.groups:
                raise ValueError(
                    f"world.group_shares needs {self.groups} entries (one per group), got {len(self.group_shares)}"
                )
            if abs(sum(self.group_shares) - 1.0) > 1e-6:
                raise ValueError(f"world.group_shares must sum to 1, got {sum(self.group_shares):.6g}")
        if isinstance(self.noise_std, tuple) and len(self.noise_std) != self.groups:
            raise ValueError(f"world.noise_std needs {self.groups} entries or one number, got {len(self.noise_std)}")
        if self.data != "gaussian":
            self._check_real()
        return self

    def _check_real(self) -> None:
        from .realdata import dataset_dims

        if self.groups != 2:
            raise ValueError(
                f"world.groups must be 2 for world.data = {self.data!r} (its two groups), got {self.groups}"
            )
        top = dataset_dims(self.data)
        if self.d > top:
            raise ValueError(
                f"world.d must be <= {top} for world.data = {self.data!r} (its features + 1), got {self.d}"
            )
        for name in GAUSSIAN_CELLS:
            if getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(
                    f"world.{name} shapes the Gaussian cells; with world.data = {self.data!r} the cells are the "
                    "dataset's images (leave it at its default)"
                )

    def shares(self) -> tuple[float, ...]:
        """The group shares P_0(a) (default 0.7 / 0.3 for two groups, uniform otherwise).

        Returns:
            (G,) shares summing to 1.
        """
        if self.group_shares is not None:
            return tuple(self.group_shares)
        return (0.7, 0.3) if self.groups == 2 else tuple([1.0 / self.groups] * self.groups)

    def stds(self) -> tuple[float, ...]:
        """The per-group noise standard deviations.

        Returns:
            (G,) ``noise_std`` per group (one value repeated for every group).
        """
        return self.noise_std if isinstance(self.noise_std, tuple) else (self.noise_std,) * self.groups


class FM(_Section):
    """How theta_0 is made: ridge solution of P0 risk (with its own spurious
    correlation r0) plus an alignment term on the probe world."""

    r0: Corr = Field(0.0, description="spurious correlation of the FM's pretraining world (FM bias)")
    ridge: NonNeg = Field(1e-3, description="ridge penalty of the pretraining solution")
    alignment_weight: NonNeg = Field(0.1, description="gamma: weight of the probe-refusal term")


class Model(_Section):
    """The client model: what is personalized and deployed, and how its metrics are computed."""

    kind: str = Field(
        "linear",
        description="client model (sim/models.py): linear (the stylized world's readout, exact metrics), mlp (a flax "
        "MLP readout, Monte Carlo metrics with standard errors, sim/mlp.py), lora (the MLP's backbone frozen as the FM, "
        "a trainable rank-r adapter and head, sim/lora.py) or a registered plugin model",
    )
    rank: int = Field(4, ge=1, le=4096, description="lora: rank r of the adapter (at most width and world.d)")
    width: int = Field(32, ge=1, le=4096, description="mlp: hidden units of the readout")
    activation: Literal["relu", "tanh", "gelu", "identity"] = Field("relu", description="mlp: hidden activation")
    hidden: Literal["train", "frozen"] = Field(
        "train", description="mlp: the hidden layer is trained, or frozen at its initialization (FM pretraining too)"
    )
    hidden_init: Literal["random", "identity"] = Field(
        "random", description="mlp: hidden kernel LeCun-normal, or the identity I (d x width; needs width >= d)"
    )
    eval_samples: int = Field(
        64, ge=1, le=100_000, description="mlp: held-out draws per (label, group) cell and replicate for the metrics"
    )
    replicates: int = Field(
        4, ge=2, le=64, description="mlp: independent replicates of the held-out draws (their spread is the SE)"
    )
    pretrain_steps: int = Field(300, ge=1, le=100_000, description="mlp: Adam steps of the FM's pretraining")
    pretrain_samples: int = Field(
        4096, ge=2, le=1_000_000, description="mlp: P0 draws (and as many probe draws) of the FM's pretraining"
    )
    pretrain_lr: Pos = Field(0.01, description="mlp: Adam learning rate of the FM's pretraining")

    @model_validator(mode="after")
    def _known(self) -> Model:
        from .models import CLIENT_MODELS  # the registry (plugins add to it)

        if self.kind not in CLIENT_MODELS:
            raise ValueError(f"model.kind: unknown client model {self.kind!r}; registered: {', '.join(CLIENT_MODELS)}")
        if self.kind == "linear":
            extra = [k for k, f in type(self).model_fields.items() if k != "kind" and getattr(self, k) != f.default]
            if extra:
                raise ValueError(
                    f"model.{extra[0]} applies only to model.kind = 'mlp' or 'lora' (the linear readout has none)"
                )
        if self.kind == "mlp" and self.rank != type(self).model_fields["rank"].default:
            raise ValueError("model.rank applies only to model.kind = 'lora' (the mlp has no adapter)")
        if self.kind == "lora" and self.rank > self.width:
            raise ValueError(f"model.rank must be <= model.width ({self.width}) for the adapter, got {self.rank}")
        return self


class Temporal(_Section):
    """Temporal drift of the shift strength over rounds."""

    kind: Literal["none", "linear", "step"] = Field("none", description="how shift strength evolves over rounds")
    ramp_rounds: int = Field(10, ge=1, description="rounds to reach full strength (linear) or the step round (step)")


class Shifts(_Section):
    """Client shift families and their heterogeneity (paper/main.tex, The stylized model)."""

    label_alpha: Pos | None = Field(
        None, description="label shift: pi_c(y) ~ Dirichlet(alpha pi0(y)); smaller = stronger; None = off"
    )
    attribute_alpha: Pos | None = Field(
        None, description="attribute imbalance: pi_c(a) ~ Dirichlet(alpha pi0(a)); None = off"
    )
    spurious_mean: Corr | None = Field(
        None, description="spurious correlation: mean client r_c; None = off (clients keep P0's r)"
    )
    spurious_spread: NonNeg = Field(0.0, description="std of r_c across clients (clipped to [-1, 1])")
    covariate_scale: NonNeg = Field(0.0, description="covariate shift: std of the client mean offset delta_c")
    covariate_var_spread: NonNeg = Field(0.0, description="covariate shift: log-std of the client covariance scale s_c")
    concept_angle: NonNeg = Field(
        0.0, description="concept shift: std (radians) of the rotation of mu_core toward the alignment direction"
    )
    strength: Prob = Field(
        1.0,
        description="overall shift strength f: every client sits at f between its base and its fully shifted distribution (shifts.interpolate); 0 = no shift",
    )
    strength_spread: Literal["none", "beta"] = Field(
        "none",
        description="per-client shift strength: none (every client at f) or beta (client c at s_c ~ Beta(f kappa, "
        "(1 - f) kappa), mean f; kappa = shifts.strength_concentration)",
    )
    strength_concentration: Pos = Field(
        4.0, description="kappa of shifts.strength_spread = beta: Var s_c = f (1 - f) / (kappa + 1)"
    )
    label_noise: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="label noise: probability rho that a client's training label is flipped (clean FM and evaluation)",
    )
    label_noise_minority: float | None = Field(
        None,
        ge=0.0,
        lt=0.5,
        description="group-dependent label noise: the flip rate in the minority groups (default label_noise)",
    )
    temporal: Temporal = Field(default_factory=Temporal, description="temporal drift of all the above")
    by_family: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="parameters of plugin shift families, e.g. {prior_tilt = {delta = 0.2}}; a family named here is on",
    )

    @model_validator(mode="after")
    def _strength_fields(self) -> Shifts:
        if self.strength_spread == "none" and self.strength_concentration != 4.0:
            raise ValueError("shifts.strength_concentration applies only to shifts.strength_spread = 'beta'")
        return self

    @model_validator(mode="after")
    def _known_families(self) -> Shifts:
        if self.by_family:
            from .shifts import BUILTIN_FAMILIES, SHIFT_FAMILIES  # the registry (plugins add to it)

            builtin = set(BUILTIN_FAMILIES)
            if bad := sorted(set(self.by_family) - (set(SHIFT_FAMILIES) - builtin)):
                raise ValueError(
                    f"shifts.by_family: {bad} are not plugin shift families; registered: "
                    f"{', '.join(sorted(set(SHIFT_FAMILIES) - builtin)) or 'none'} (the built-in ones have their own fields)"
                )
        return self


class Population(_Section):
    """The clients: how many, population or finite-sample statistics, sample sizes, the OOD panel."""

    num_clients: int = Field(1000, ge=1, le=10_000_000, description="number of clients N")
    mode: Literal["population", "finite", "logistic"] = Field(
        "population",
        description="exact population risks, exact finite-sample statistics, or materialized data with logistic loss",
    )
    samples_per_client: int = Field(
        200, ge=2, le=1_000_000, description="mean local sample size n_c (finite/logistic modes)"
    )
    samples_spread: NonNeg = Field(0.0, description="log-normal spread of n_c across clients")
    max_samples: int = Field(256, ge=2, le=4096, description="logistic mode: samples materialized per client (cap)")
    ood_subset: int = Field(
        16,
        ge=1,
        le=256,
        description="R: size of the fixed random panel of clients every personal model is evaluated on (itself excluded)",
    )
    trace_clients: int = Field(
        64, ge=0, description="clients whose per-client metrics the trace keeps (all clients enter the summaries)"
    )


class Personalization(_Section):
    """The local personalization rule and its parameters (K steps of rate eta)."""

    rule: Literal["full", "proximal", "subspace", "head_only", "teacher"] = Field(
        "proximal", description="local personalization rule (paper/main.tex, The stylized model)"
    )
    K: int = Field(5, ge=1, le=10_000, description="local steps per round")
    eta: Pos = Field(0.1, description="local learning rate")
    lam: NonNeg = Field(0.1, description="proximal strength lambda (Ditto / pFedMe); 0 for 'full'")
    rank: int | None = Field(None, ge=1, description="subspace rule: rank r of span(U_r) (default d/4)")
    trainable: tuple[int, ...] | None = Field(
        None, description="head_only rule: trainable coordinate indices in [0, d] (d = bias); default bias + first half"
    )
    beta: Prob = Field(0.0, description="teacher rule: weight of the FM teacher's risk")
    teacher_r: Corr | None = Field(None, description="teacher's spurious correlation (default: the FM's r0)")
    teacher_poison: Prob = Field(
        0.0,
        description="fraction of the teacher's data drawn from the probe world labelled 'comply' (external FM poisoning)",
    )

    @model_validator(mode="after")
    def _rule_fields(self) -> Personalization:
        if self.rule == "full" and self.lam != 0:
            raise ValueError("personalization.lam must be 0 for rule 'full' (use rule 'proximal' for lambda > 0)")
        if self.rule != "teacher" and (self.beta != 0 or self.teacher_poison != 0):
            raise ValueError("personalization.beta and teacher_poison apply only to rule 'teacher'")
        if self.rule != "subspace" and self.rank is not None:
            raise ValueError("personalization.rank applies only to rule 'subspace'")
        if self.rule != "head_only" and self.trainable is not None:
            raise ValueError("personalization.trainable applies only to rule 'head_only'")
        return self


class Federation(_Section):
    """The federation: rounds, participation, clipping, secure aggregation, DP, Byzantine clients, the server optimizer
    and the server's access."""

    rounds: int = Field(50, ge=1, le=100_000, description="communication rounds T")
    clients_per_round: int = Field(
        100,
        ge=1,
        description="participation slots per round (fixed; masked when fewer join); with central DP it must be num_clients (no slots: Poisson sampling)",
    )
    participation: Prob = Field(0.1, description="base probability q that a client joins a round")
    participation_disparity: Prob = Field(
        0.0,
        description="q_c = q (1 - disparity m_c) / (1 - disparity mean m_c), m_c the client's mass in the minority (odd) groups: minority-heavy clients join less",
    )
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="probability a sampled client fails to report"
    )
    secagg_min: int = Field(
        1, ge=1, description="secure aggregation threshold m: a round with fewer reports releases nothing"
    )
    clip: Pos | None = Field(None, description="update clip norm C (required with DP)")
    dp: Literal["none", "central", "local"] = Field("none", description="differential privacy mode")
    noise_multiplier: NonNeg = Field(
        0.0, description="z: Gaussian noise std is z C (on the sum, or per client for local DP)"
    )
    dp_delta: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        1e-5, description="delta of the (epsilon, delta) accounting"
    )
    server_optimizer: Literal["sgd", "momentum", "adam", "yogi", "adagrad"] = Field(
        "sgd", description="optax server optimizer (FedAvg = sgd with lr 1)"
    )
    server_lr: Pos = Field(1.0, description="server learning rate")
    byzantine_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="fraction of clients that submit crafted updates"
    )
    byzantine_kind: Literal["alignment", "spurious", "sign_flip", "noise"] = Field(
        "alignment", description="crafted update: push along -alignment or +spurious direction, flip, or noise"
    )
    byzantine_scale: Pos = Field(1.0, description="norm of the crafted update (before clipping)")
    aggregator: str = Field(
        "fedavg",
        description="server aggregation rule (sim/aggregators.py): fedavg, median, trimmed_mean, norm_bounded or a "
        "plugin's; a rule other than fedavg reads every update (secure_aggregation = false, no central DP)",
    )
    trim_fraction: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        0.1, description="trimmed_mean rule: fraction beta trimmed from each end of every coordinate"
    )
    norm_bound: Pos | None = Field(None, description="norm_bounded rule: bound M on the norm of each update")
    secure_aggregation: bool = Field(
        True,
        description="the server sees only secure sums, never a single client's update or report (blocks per-client values)",
    )
    attribute_use: bool = Field(
        True, description="clients know and may use their protected attribute (enables group-stratified secure sums)"
    )
    public_probe: bool = Field(
        True, description="a public probe set and a public P0 sample exist (server and clients can evaluate on them)"
    )
    personal_model_access: bool = Field(
        False, description="the server can query the personalized models (no constraint no_personal_model_access)"
    )
    raw_data_access: bool = Field(
        False, description="the server can read the clients' data (no constraint no_raw_data_access)"
    )
    public_schedule: Literal["never", "alternate", "adaptive"] = Field(
        "never",
        description="switching between federated rounds on private data and centralized rounds on the server's public P0 data: "
        "never; alternate (every public_every-th round is centralized); adaptive (a round is centralized when the global "
        "model's public P0 accuracy or probe alignment is more than public_tolerance below the FM's)",
    )
    public_every: int = Field(
        2, ge=1, description="alternate schedule: rounds t with (t + 1) % public_every == 0 are centralized"
    )
    public_steps: int = Field(
        5, ge=1, le=1000, description="gradient steps of a centralized round on the public objective"
    )
    public_lr: NonNeg = Field(
        0.1, description="learning rate of the centralized steps (0: a centralized round leaves the model unchanged)"
    )
    public_tolerance: NonNeg = Field(
        0.01,
        description="adaptive schedule: drop of public P0 accuracy or alignment below the FM's that triggers a centralized round",
    )

    @model_validator(mode="after")
    def _dp_needs_clip(self) -> Federation:
        if self.dp != "none" and self.clip is None:
            raise ValueError("federation.clip must be set (> 0) when federation.dp is 'central' or 'local'")
        if self.dp != "none" and self.noise_multiplier <= 0:
            raise ValueError("federation.noise_multiplier must be > 0 when federation.dp is not 'none'")
        if self.public_schedule != "never" and not self.public_probe:
            raise ValueError(
                f"federation.public_schedule = {self.public_schedule!r} needs public data on the server: set federation.public_probe = true"
            )
        if self.aggregator != "fedavg":
            from .aggregators import AGGREGATORS  # the registry (plugins add to it)

            rule = AGGREGATORS.get(self.aggregator)
            if rule is None:
                raise ValueError(
                    f"federation.aggregator: unknown rule {self.aggregator!r}; registered: {', '.join(AGGREGATORS)}"
                )
            if not rule.secure and self.secure_aggregation:
                raise ValueError(
                    f"federation.aggregator = {self.aggregator!r} reads every update: set federation.secure_aggregation = false"
                )
            if not rule.secure and self.dp == "central":
                raise ValueError(
                    f"federation.aggregator = {self.aggregator!r} reads every update, which central DP noises only as a sum: "
                    "use federation.dp = 'local' or 'none'"
                )
        if self.aggregator == "norm_bounded" and self.norm_bound is None:
            raise ValueError("federation.norm_bound must be set (> 0) for federation.aggregator = 'norm_bounded'")
        if self.secagg_min > self.clients_per_round:
            raise ValueError(
                f"federation.secagg_min ({self.secagg_min}) must be <= federation.clients_per_round ({self.clients_per_round})"
            )
        return self


class Thresholds(_Section):
    """Failure thresholds of the six modes' round metrics (see sim/metrics.py)."""

    amplified_bias: Pos = Field(
        0.05,
        description="worst-decile directional bias amplification: five points of positive-rate exaggeration "
        "beyond the data's group gap, four times the largest of the phase world's no-shift runs (0.013, 16 seeds)",
    )
    confidence_miscalibration: Pos = Field(
        0.05,
        description="worst-decile client ECE of the kind ece_kind (both kinds are probabilities and coincide when the miscalibration is in the confidence, not in the label balance; top-label <= classwise): five points, five times the largest of the phase world's no-shift runs (0.010, 16 seeds)",
    )
    fairness_collapse: Pos = Field(
        0.03,
        description="growth of the fairness measure (fairness_metric) over the FM's on the same clients: 0.03 is three "
        "points of accuracy between the best and the worst group, five times the largest growth in the phase "
        "world's no-shift runs (0.0059, 16 seeds)",
    )
    fairness_metric: Literal["group_gap", "client_spread"] = Field(
        "group_gap",
        description="fairness collapse's measure: 'group_gap' (max - min pooled group accuracy, the taxonomy's "
        "definition) or 'client_spread' (mean - worst-decile client accuracy)",
    )
    fairness_mean_tolerance: NonNeg = Field(
        0.02, description="mean accuracy may drop at most this much for a fairness collapse to count"
    )
    adaptation_misalignment: Pos = Field(
        0.05,
        description="worst-decile within-round drop of P0 accuracy or alignment: thirteen times the largest of the phase world's no-shift runs (0.0037, 16 seeds)",
    )
    out_of_domain_degradation: Pos = Field(
        0.05,
        description="worst-decile drop of accuracy on other clients or P0 vs the FM: five points (the phase world's no-shift runs reach 0.0003)",
    )
    alignment_erosion: Pos = Field(
        0.05,
        description="drop of the global model's alignment score below the FM's: five points of the probe's refusal rate; the no-shift runs reach 0.059 under the phase world's central DP and 0.043 in the default world, so erosion is the mode the constraints themselves cause (reported as caused without shift), not a threshold set too low",
    )
    persist: int = Field(
        3,
        ge=1,
        le=1000,
        description="consecutive rounds a mode's metric must stay over its threshold (or stay over it to the horizon) "
        "for the mode to fail at the first of them; a shorter crossing is a transient, counted but not a failure. "
        "3 excludes the one- and two-round excursions that resampling the participants causes while any failure "
        "lasting a tenth of a 30-round horizon counts",
    )
    persist_by_mode: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=dict,
        description="per-mode persistence overriding persist, e.g. {alignment_erosion = 5}",
    )
    by_mode: dict[str, Pos] = Field(
        default_factory=dict,
        description="thresholds of plugin modes, overriding their registered defaults, e.g. {memorization = 0.02}",
    )
    ece_bins: int = Field(15, ge=2, le=100, description="bins of the calibration error")
    ece_kind: Literal["classwise", "top_label"] = Field(
        "classwise",
        description="calibration error of the miscalibration mode: 'classwise' (binned E|P(y=1 | p) - p| of both classes, "
        "the taxonomy's definition) or 'top_label' (Guo et al.: confidence max(p, 1-p) against accuracy); both are in the trace",
    )

    @model_validator(mode="after")
    def _known_modes(self) -> Thresholds:
        for field in ("persist_by_mode", "by_mode"):
            if bad := sorted(set(getattr(self, field)) - set(MODES)):
                raise ValueError(f"thresholds.{field}: unknown mode(s) {bad}; modes: {', '.join(MODES)}")
        if builtin := sorted(set(self.by_mode) & set(BUILTIN_MODES)):
            raise ValueError(f"thresholds.by_mode: {builtin} are built-in modes: set thresholds.<mode> instead")
        return self

    def threshold(self, mode: str) -> float:
        """The failure threshold of ``mode``: the field of a built-in mode, else
        ``by_mode`` or the plugin mode's registered default.

        Args:
            mode: a registered mode id.

        Returns:
            The threshold.
        """
        if mode in BUILTIN_MODES:
            return getattr(self, mode)
        return self.by_mode.get(mode, MODE_REGISTRY[mode].threshold)

    def persistence(self) -> tuple[int, ...]:
        """Rounds of persistence of each mode (MODES order): ``persist_by_mode``, else a
        plugin mode's registered persist, else ``persist``.

        Returns:
            One integer per registered mode.
        """
        return tuple(self.persist_by_mode.get(m, MODE_REGISTRY[m].persist or self.persist) for m in MODES)


class Intervention(_Section):
    """An intervention on one mode's mechanism (sim/intervention.py): every round each
    client's model moves along a mechanism that causes the mode; for testing the
    influence edges between modes (``silentfail influences``)."""

    mode: str = Field(
        "none",
        description="the built-in mode whose mechanism is moved (sim/intervention.py), or none",
    )
    strength: NonNeg = Field(0.0, description="delta: the move's size relative to the model's norm")
    block: Prob = Field(
        0.0,
        description="share of the move along the gradient of the client's own mode metric removed "
        "(1: the mode's mechanism blocked, the mediation control)",
    )

    @model_validator(mode="after")
    def _known(self) -> Intervention:
        from .intervention import MECHANISMS

        if self.mode != "none" and self.mode not in MECHANISMS:
            raise ValueError(f"intervention.mode: unknown mode {self.mode!r}; modes: none, {', '.join(MECHANISMS)}")
        return self


class Monitor(_Section):
    """The server's monitoring: which detectors run, their false-alarm rate, and when a
    late alarm still counts (paper/main.tex, The six modes)."""

    detectors: tuple[str, ...] | None = Field(
        None, description=f"deployed detectors (default: every one the access allows): {', '.join(DETECTORS)}"
    )
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.05, description="false-alarm rate of each detector over the horizon, calibrated on the null scenario"
    )
    grace: int = Field(
        5, ge=0, description="rounds after the failure round within which an alarm still counts as a detection"
    )
    lead: int = Field(
        0,
        ge=0,
        description="rounds before the failure round from which an alarm counts as a detection; an earlier alarm is an "
        "early warning (reported, never a detection): with 0 only an alarm in [T_f, T_f + grace] detects the failure",
    )
    null: Literal["no_shift", "no_failure"] = Field(
        "no_shift",
        description="null runs the detectors are calibrated on: 'no_shift' (the scenario with shifts.strength = 0) or "
        "'no_failure' (those null runs in which no mode fails; the number rejected is reported)",
    )
    calibration_seeds: int = Field(
        100,
        ge=8,
        le=100_000,
        description="null-scenario seeds per calibration: a quarter fixes the score, a quarter sets the conformal quantile (needs >= 1/alpha - 1 runs), half measure the achieved false-alarm rate",
    )
    attribution: Literal["watch", "any"] = Field(
        "watch",
        description="'watch': a mode is detected only by a detector channel that watches it (taxonomy detects edges); 'any': by any alarm (the source paper's literal definition)",
    )

    @model_validator(mode="after")
    def _known(self) -> Monitor:
        n = self.calibration_seeds // 2 - self.calibration_seeds // 4
        if math.ceil((1 - self.alpha) * (n + 1) - 1e-9) > n:
            need = 4 * math.ceil(1 / self.alpha - 1 - 1e-9)
            raise ValueError(
                f"monitor.calibration_seeds = {self.calibration_seeds} is too few for monitor.alpha = {self.alpha}: "
                f"a quarter of them set the conformal quantile and need >= 1/alpha - 1 runs; use >= {need}"
            )
        if self.detectors is not None:
            bad = [d for d in self.detectors if d not in DETECTORS]
            if bad:
                raise ValueError(f"monitor.detectors: unknown detector(s) {bad}; allowed: {', '.join(DETECTORS)}")
        return self


def _check_mlp(sc: Scenario) -> None:
    """What the Monte Carlo client models (sim/mlp.py, sim/lora.py) need of the rest of a scenario."""
    m = sc.model
    kind = f"model.kind = {m.kind!r}"
    if sc.population.mode == "population":
        raise ValueError(
            f"population.mode must be 'finite' (squared loss) or 'logistic' for {kind}: it is "
            "personalized on each client's sample (no population risk in closed form)"
        )
    if m.hidden_init == "identity" and m.width < sc.world.d:
        raise ValueError(f"model.width must be >= world.d = {sc.world.d} for hidden_init = 'identity', got {m.width}")
    if m.kind == "lora" and m.rank > sc.world.d:
        raise ValueError(f"model.rank must be <= world.d ({sc.world.d}) for the adapter, got {m.rank}")
    rules = ("full", "proximal", "head_only") + (("subspace",) if m.kind == "lora" else ())
    if sc.personalization.rule not in rules:
        raise ValueError(
            f"personalization.rule = {sc.personalization.rule!r} is defined for the linear readout only; "
            f"{kind} takes {', '.join(rules)}"
        )
    if sc.personalization.rank is not None:
        raise ValueError("personalization.rank is the linear readout's subspace; model.kind = 'lora' takes model.rank")
    if sc.personalization.trainable is not None:
        raise ValueError(
            f"personalization.trainable names linear coordinates; {kind} with rule head_only trains its output layer"
        )
    if sc.federation.public_schedule != "never":
        raise ValueError("federation.public_schedule needs the linear readout's closed-form centralized steps")
    if sc.shifts.temporal.kind != "none":
        raise ValueError(f"shifts.temporal needs population.mode = 'population', which {kind} cannot use")


class Scenario(_Section):
    """One simulated world: P0 and the probe, the FM, the clients, the personalization,
    the federation, and the failure thresholds."""

    name: str = Field("custom", description="scenario name")
    description: str = Field("", description="what the scenario shows")
    world: World = Field(default_factory=World)
    fm: FM = Field(default_factory=FM)
    model: Model = Field(default_factory=Model)
    shifts: Shifts = Field(default_factory=Shifts)
    population: Population = Field(default_factory=Population)
    personalization: Personalization = Field(default_factory=Personalization)
    federation: Federation = Field(default_factory=Federation)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    monitor: Monitor = Field(default_factory=Monitor)
    intervention: Intervention = Field(default_factory=Intervention)

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        d, n = self.world.d, self.population.num_clients
        f = self.federation
        if f.dp == "central" and f.clients_per_round != n:
            raise ValueError(
                f"federation.clients_per_round ({f.clients_per_round}) must equal population.num_clients ({n}) "
                "when federation.dp = 'central': the accounting assumes Poisson sampling, and report slots would "
                "cap the sample (one more client could push another out: sensitivity 2C, not C); "
                f"set federation.clients_per_round = {n}"
            )
        if self.federation.clients_per_round > n:
            raise ValueError(
                f"federation.clients_per_round ({self.federation.clients_per_round}) must be <= population.num_clients ({n})"
            )
        p = self.personalization
        if p.rank is not None and p.rank > d + 1:
            raise ValueError(f"personalization.rank must be in [1, d+1] = [1, {d + 1}], got {p.rank}")
        if p.trainable is not None:
            bad = [i for i in p.trainable if not 0 <= i <= d]
            if bad or not p.trainable:
                raise ValueError(
                    f"personalization.trainable indices must be in [0, d] = [0, {d}], got {list(p.trainable)}"
                )
        if self.model.kind in ("mlp", "lora"):
            _check_mlp(self)
        elif self.world.data != "gaussian":
            raise ValueError(
                f"world.data = {self.world.data!r} needs model.kind = 'mlp' or 'lora' (personalized on samples, "
                f"metrics on held-out images); model.kind = {self.model.kind!r} computes on Gaussian cells"
            )
        if self.population.ood_subset > n:
            raise ValueError(
                f"population.ood_subset must be <= population.num_clients ({n}), got {self.population.ood_subset}"
            )
        return self

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data.

        Returns:
            Nested dicts of the sections and their fields.
        """
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The scenario as canonical JSON (sorted keys): the key of every cache and store.

        Returns:
            The JSON text.
        """
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **updates: Any) -> Scenario:
        """A copy with dotted-path fields replaced, e.g. ``replace(**{"federation.rounds": 5})``;
        the result is validated again.

        Args:
            **changes: ``{"section.field": value}`` (nested sections by more dots).

        Returns:
            The new Scenario.

        Raises:
            ScenarioError: an unknown field path, or a value the validation refuses.
        """
        data = self.to_dict()
        for path, value in updates.items():
            node = data
            parts = path.split(".")
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise ScenarioError(f"unknown scenario field {path!r}")
                node = node[p]
            if parts[-1] not in node:
                raise ScenarioError(f"unknown scenario field {path!r}")
            node[parts[-1]] = value
        return scenario_from_dict(data)


class FieldDoc(NamedTuple):
    """One scenario field: its dotted path, type, allowed range, default and description."""

    path: str
    type: str
    range: str
    default: str
    description: str


_BOUNDS = (("gt", "> "), ("ge", ">= "), ("lt", "< "), ("le", "<= "))


def _range(metadata: list, annotation: Any) -> str:
    """The bounds of a field from its constraints (also those inside Optional[Annotated[...]])."""
    parts = [
        f"{sym}{getattr(m, attr)}" for m in metadata for attr, sym in _BOUNDS if getattr(m, attr, None) is not None
    ]
    for arg in typing.get_args(annotation):
        for m in getattr(arg, "__metadata__", ()):
            for inner in getattr(m, "metadata", ()):
                parts += [
                    f"{sym}{getattr(inner, attr)}" for attr, sym in _BOUNDS if getattr(inner, attr, None) is not None
                ]
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    """A readable type: float, int | None, tuple[float, ...], Literal['a', 'b'], ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _fields_of(model: type[BaseModel], prefix: str) -> list[FieldDoc]:
    out = []
    for name, f in model.model_fields.items():
        path = f"{prefix}.{name}"
        if _is_section(f.annotation):
            out += _fields_of(f.annotation, path)
            continue
        default = f.default_factory() if f.default_factory is not None else f.default
        shown = repr(default) if isinstance(default, str) or default is None else json.dumps(default)
        out.append(
            FieldDoc(path, _type_name(f.annotation), _range(f.metadata, f.annotation), shown, f.description or "")
        )
    return out


def scenario_fields(section: str | None = None) -> list[FieldDoc]:
    """Every field of a scenario (or of one section: world, fm, shifts, population,
    personalization, federation, thresholds, monitor) with its type, range, default and
    description, in declaration order (``silentfail fields``).

    Args:
        section: one section's name, or None for every field.

    Returns:
        One ``FieldDoc(path, type, range, default, description)`` per leaf field.

    Raises:
        ScenarioError: an unknown section.
    """
    sections = {k: f.annotation for k, f in Scenario.model_fields.items() if _is_section(f.annotation)}
    if section is not None and section not in sections:
        raise ScenarioError(f"unknown section {section!r}; sections: {', '.join(sections)}")
    return [d for name, model in sections.items() if section in (None, name) for d in _fields_of(model, name)]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "").removeprefix("Value error, ")
        value = err.get("input")
        got = f" (got {value!r})" if loc and not isinstance(value, dict) else ""
        parts.append(f"{loc + ': ' if loc else ''}{msg}{got}")
    return "; ".join(parts)


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Validate a mapping into a Scenario, raising ScenarioError naming each bad field.

    Args:
        data: the scenario's sections and fields.

    Returns:
        The Scenario.

    Raises:
        ScenarioError: naming every bad field.
    """
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"invalid scenario: {_describe(exc)}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario from a TOML file (a ``preset = "NAME"`` key starts from a preset).

    Args:
        path: a .toml file.

    Returns:
        The Scenario.

    Raises:
        ScenarioError: a missing or unreadable file, invalid TOML, an unknown preset or a bad field.
    """
    p = Path(path)
    if not p.exists():
        raise ScenarioError(f"scenario file {str(p)!r} does not exist")
    if not p.is_file():
        raise ScenarioError(f"scenario file {str(p)!r} is not a regular file (a directory, a FIFO or a device)")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(
            f"scenario file {str(p)!r} is not UTF-8 text (binary, or another encoding such as UTF-16)"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario file {str(p)!r} is not valid TOML: {exc}") from None
    if not data:
        raise ScenarioError(
            f"scenario file {str(p)!r} sets nothing (empty or only comments); "
            'start it from a preset (preset = "default") or set the fields it changes'
        )
    return _from_toml_data(data)


def _from_toml_data(data: dict[str, Any]) -> Scenario:
    """Validate TOML data; a ``preset = "NAME"`` key starts from that preset."""
    base = data.pop("preset", None)
    if base is not None:
        data = _merge(preset(base).to_dict(), data)
    return scenario_from_dict(data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset_names() -> list[str]:
    """Names of the presets shipped with the package.

    Returns:
        The names, sorted.
    """
    files = resources.files(__package__).joinpath("presets")
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".toml"))


def _preset_data(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise ScenarioError(f"unknown preset {name!r}; presets: {', '.join(names)}")
    return tomllib.loads(resources.files(__package__).joinpath("presets", f"{name}.toml").read_text())


def preset(name: str) -> Scenario:
    """A named preset (``silentfail simulate --list-presets``).

    Args:
        name: one of :func:`preset_names`.

    Returns:
        The validated scenario (its promise is :func:`preset_exhibits`).
    """
    data = _preset_data(name)
    data.pop("exhibits", None)
    return _from_toml_data(data)


#: What a preset may promise of a mode, over 8 seeds under its own constraints and
#: detectors: it fails (P(fail) >= 1/2), and, for the last two, also P(silent | fail) >= 1/2
#: or P(detected | fail) >= 1/2.
EXHIBIT_KINDS = ("fails", "silent", "detected")


def preset_exhibits(name: str) -> dict[str, str]:
    """The modes a preset is built to show and how (its ``[exhibits]`` table: mode ->
    one of :data:`EXHIBIT_KINDS`); a test holds every preset to its promise.

    Args:
        name: a preset name (:func:`preset_names`).

    Returns:
        ``{mode: "silent" | "detected"}`` for the modes the preset promises.

    Raises:
        ScenarioError: an unknown preset, or an ``[exhibits]`` table naming an unknown mode
            or kind.
    """
    table = _preset_data(name).get("exhibits", {})
    for mode, kind in table.items():
        if mode not in MODES:
            raise ScenarioError(f"preset {name!r}: exhibits.{mode}: unknown mode; modes: {', '.join(MODES)}")
        if kind not in EXHIBIT_KINDS:
            raise ScenarioError(f"preset {name!r}: exhibits.{mode}: {kind!r} is not one of {', '.join(EXHIBIT_KINDS)}")
    return dict(table)


def exhibits_text(exhibits: dict[str, str]) -> str:
    """One line of a preset's promise, e.g. 'fairness_collapse (silent), alignment_erosion (fails)'.

    Args:
        exhibits: ``{mode: kind}`` (:func:`preset_exhibits`).

    Returns:
        The line.
    """
    return ", ".join(f"{m} ({k})" for m, k in exhibits.items()) or "no mode promised"
