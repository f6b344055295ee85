"""The built-in taxonomy of silent failures (paper/main.tex, The taxonomy; Oh & Bui, KDD '26).

The six failure modes are the source paper's; their ground-truth metrics are this
package's formalization of its prose (each mode's ``metric`` says so). Causes,
mechanisms and detectors follow the reference paper (paper/main.tex, The taxonomy); the threats named by the FM-FL
literature (Li & Wang 2024; Yu et al. 2023) are placed where they fit: privacy and
security threats as ``Threat`` nodes, participation resource disparity and Byzantine
faults as constraints, client drift and underrepresented demographic attributes as
mechanisms.

A note on scope: a ``detects`` edge has scope ``deployed`` when the detector sees the
behaviour of the personalized models the clients actually run, and ``global`` when it
sees only the aggregated global model. A silent failure of the deployed models is one
no surviving deployed-scope detector can see.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

from .graph import Taxonomy
from .references import BIBTEX, TITLES
from .schema import (
    Access,
    Benchmark,
    Constraint,
    Detector,
    FailureMode,
    Mechanism,
    Mitigation,
    Observable,
    Personalization,
    Reference,
    Shift,
    Threat,
)

MODE_COLUMNS = (
    "amplified_bias",
    "confidence_miscalibration",
    "fairness_collapse",
    "adaptation_misalignment",
    "out_of_domain_degradation",
    "alignment_erosion",
)

#: The constraint set of a standard secure, private federated deployment.
FEDERATED_CONSTRAINTS = ("secure_aggregation", "no_raw_data_access", "no_personal_model_access")

#: The detectors a standard federated pipeline already runs (system-level metrics).
STANDARD_DETECTORS = ("aggregate_monitor", "server_probe_eval", "update_direction_monitor", "cusum_detector")


def benchmark_matrix_csv() -> str:
    """The benchmark landscape of Oh & Bui (Table 1), as shipped with the package.

    Returns:
        The CSV text (package data).
    """
    return resources.files(__package__).joinpath("benchmark_matrix.csv").read_text()


def _personalizations() -> list[tuple]:
    return [
        (
            Personalization(
                id="full_finetuning",
                name="Full fine-tuning",
                definition="K steps of gradient descent on the client's local risk from the current global model.",
                formal=r"\theta \leftarrow \theta - \eta \nabla R_c(\theta)",
                aliases=("FedAvg local training", "full FT"),
            ),
            ["mcmahan2017communication"],
        ),
        (
            Personalization(
                id="proximal",
                name="Proximal personalization (Ditto / pFedMe)",
                definition="Local gradient steps on the local risk plus a proximal term lambda/2 ||theta - theta_g||^2 that anchors the personal model to the global one.",
                formal=r"\theta \leftarrow \theta - \eta [\nabla R_c(\theta) + \lambda(\theta - \theta_g)]",
                aliases=("Ditto", "pFedMe"),
            ),
            ["li2021ditto", "dinh2020personalized"],
        ),
        (
            Personalization(
                id="subspace",
                name="Subspace adaptation (LoRA-like)",
                definition="The update is restricted to a rank-r subspace span(U_r) of parameter space.",
                formal=r"\theta \leftarrow \theta - \eta U_r U_r^\top \nabla R_c(\theta)",
                aliases=("LoRA", "low-rank adapter"),
            ),
            ["hu2022lora"],
        ),
        (
            Personalization(
                id="head_only",
                name="Head-only / prompt-like tuning",
                definition="Only a fixed subset of coordinates is trainable; the rest stay at the FM's values.",
                formal=r"\theta \leftarrow \theta - \eta D_S \nabla R_c(\theta),\ D_S = \mathrm{diag}(1_S)",
                aliases=("prompt tuning", "linear probing"),
            ),
            ["lester2021power"],
        ),
        (
            Personalization(
                id="teacher_mixing",
                name="FM-as-teacher / synthetic data",
                definition="The client minimizes a mix of its local risk and the risk under the FM's (possibly biased or poisoned) view of the world, e.g. FM-generated synthetic data or distillation from the FM.",
                formal=r"\min_\theta (1-\beta) R_c(\theta) + \beta R_{\mathrm{teacher}}(\theta)",
                aliases=("knowledge distillation", "synthetic data"),
            ),
            ["hinton2015distilling", "li2024position"],
        ),
    ]


def _shifts() -> list[tuple]:
    return [
        (
            Shift(
                id="label_shift",
                name="Label (prior) shift",
                definition="Client label priors differ from the base world, pi_c(y) ~ Dirichlet(alpha pi_0(y)), while class-group conditionals are unchanged.",
                formal=r"P_c(y) \neq P_0(y),\ P_c(x \mid y, a) = P_0(x \mid y, a),\ P_c(a \mid y) = P_0(a \mid y)",
                changes=("P(y)", "P(y|x)", "P(x)"),
                invariant=("P(x|y,a)", "P(a|y)"),
                aliases=("prior shift", "prior probability shift"),
            ),
            ["moreno2012unifying", "saerens2002adjusting"],
        ),
        (
            Shift(
                id="attribute_imbalance",
                name="Attribute imbalance",
                definition="The share of each protected group differs across clients while the label given the group and the features given label and group are unchanged.",
                formal=r"P_c(a) \neq P_0(a),\ P_c(y \mid a) = P_0(y \mid a),\ P_c(x \mid y, a) = P_0(x \mid y, a)",
                changes=("P(a)", "P(x)", "P(y)"),
                invariant=("P(x|y,a)", "P(y|a)"),
                aliases=("group imbalance",),
            ),
            ["yang2023change"],
        ),
        (
            Shift(
                id="spurious_correlation",
                name="Spurious correlation",
                definition="The correlation r_c between label and attribute differs across clients (P_c(y|a) changes) while class-group conditionals are unchanged, so the spurious direction mu_spu becomes predictive locally.",
                formal=r"P_c(y \mid a) \neq P_0(y \mid a),\ P_c(x \mid y, a) = P_0(x \mid y, a)",
                changes=("P(y|a)", "P(y|x)"),
                invariant=("P(x|y,a)",),
                aliases=("spurious correlation shift",),
            ),
            ["yang2023change"],
        ),
        (
            Shift(
                id="covariate_shift",
                name="Covariate / domain shift",
                definition="Class-group means move by a client offset delta_c and covariances are scaled, while the joint prior of label and attribute is unchanged.",
                formal=r"P_c(x \mid y, a) = \mathcal{N}(\mu_{y,a} + \delta_c, s_c \Sigma_a),\ P_c(y, a) = P_0(y, a)",
                changes=("P(x)", "P(x|y,a)"),
                invariant=("P(y,a)",),
                aliases=("domain shift", "feature shift"),
            ),
            ["moreno2012unifying"],
        ),
        (
            Shift(
                id="concept_shift",
                name="Concept shift",
                definition="The causal direction mu_core is rotated by an angle phi_c, so the same features mean different labels, while the joint prior of label and attribute is unchanged.",
                formal=r"\mu^c_{\mathrm{core}} = R(\phi_c)\mu_{\mathrm{core}},\ P_c(y \mid x) \neq P_0(y \mid x),\ P_c(y, a) = P_0(y, a)",
                changes=("P(y|x)", "P(x|y)"),
                invariant=("P(y,a)",),
                aliases=("concept drift",),
            ),
            ["moreno2012unifying"],
        ),
        (
            Shift(
                id="temporal_drift",
                name="Temporal drift",
                definition="Any of the shifts above with a strength that is a function of the round t.",
                formal=r"P_{c,t} = S(P_0, \mathrm{strength}(t))",
                changes=("P_t(x, y, a)",),
                invariant=(),
                aliases=("non-stationarity",),
            ),
            ["moreno2012unifying"],
        ),
    ]


def _constraints() -> list[tuple]:
    return [
        (
            Constraint(
                id="secure_aggregation",
                name="Secure aggregation",
                definition="The server receives only the sum of client updates or reports over at least m participants, never a single client's.",
                formal=r"\text{server sees } \sum_{c \in S_t} \Delta_c,\ |S_t| \ge m",
                aliases=("SecAgg",),
            ),
            ["bonawitz2017practical"],
        ),
        (
            Constraint(
                id="central_dp",
                name="Central differential privacy",
                definition="Updates are clipped to norm C and Gaussian noise of scale zC is added to their sum (user-level DP-FedAvg).",
                formal=r"\tilde S = \sum_c \mathrm{clip}_C(\Delta_c) + \mathcal{N}(0, z^2 C^2 I)",
                aliases=("DP-FedAvg", "user-level DP"),
            ),
            ["mcmahan2018learning", "abadi2016deep", "dong2022gaussian"],
        ),
        (
            Constraint(
                id="local_dp",
                name="Local differential privacy",
                definition="Each client adds noise to its own clipped update before it leaves the device.",
                formal=r"\tilde\Delta_c = \mathrm{clip}_C(\Delta_c) + \mathcal{N}(0, z^2 C^2 I)",
            ),
            ["kairouz2021advances"],
        ),
        (
            Constraint(
                id="partial_participation",
                name="Partial participation",
                definition="Only a sample of clients participates in each round.",
                formal=r"P(c \in S_t) = q_c < 1",
            ),
            ["mcmahan2017communication"],
        ),
        (
            Constraint(
                id="participation_disparity",
                name="Participation resource disparity",
                definition="Participation probability depends on the client's resources or attribute mix, so resource-rich clients are over-represented in the aggregate.",
                formal=r"q_c = q(\text{resources}_c, \pi_c(a))",
                aliases=("participation resource disparity", "participation disparity"),
            ),
            ["li2024position"],
        ),
        (
            Constraint(
                id="client_dropout",
                name="Client dropout",
                definition="Sampled clients may fail to report within a round.",
                formal=r"P(\text{report} \mid c \in S_t) < 1",
            ),
            ["kairouz2021advances"],
        ),
        (
            Constraint(
                id="no_raw_data_access",
                name="No raw-data access",
                definition="Client data never leaves the client.",
                aliases=("data locality",),
            ),
            ["mcmahan2017communication"],
        ),
        (
            Constraint(
                id="no_personal_model_access",
                name="No access to personalized models",
                definition="The personalized models stay on the clients; the server holds only the global model.",
                aliases=("no personal model access",),
            ),
            ["li2021ditto", "oh2026silent"],
        ),
        (
            Constraint(
                id="no_attribute_use",
                name="No use of protected attributes",
                definition="Clients may not use or reveal their protected attribute, so no group-stratified statistic can be formed.",
            ),
            ["oh2026silent"],
        ),
        (
            Constraint(
                id="no_public_probe",
                name="No public probe set",
                definition="No public probe requests and no public sample of the base world exist, so neither the server nor the clients can evaluate a model on public data.",
                aliases=("no public data",),
            ),
            ["oh2026silent"],
        ),
        (
            Constraint(
                id="byzantine_clients",
                name="Byzantine clients",
                definition="A fraction of clients submit arbitrary or crafted updates and reports.",
                aliases=("Byzantine faults", "poisoned clients"),
            ),
            ["blanchard2017machine"],
        ),
    ]


def _threats() -> list[tuple]:
    return [
        (
            Threat(
                id="external_fm_poisoning",
                name="One-access external poisoning of the FM",
                definition="An adversary poisons the foundation model once (its pretraining data or synthetic-data generator), with no compromised client; every client that personalizes from it or distils from it inherits the poison.",
                aliases=("one-access external poisoning", "FM poisoning"),
            ),
            ["li2024position"],
        ),
        (
            Threat(
                id="universal_evasion",
                name="Universal evasion",
                definition="A compromised client injects updates that make universal jailbreak prompts bypass the aligned behaviour of every model derived from the aggregate.",
                aliases=("universal jailbreak injection",),
            ),
            ["li2024position"],
        ),
        (
            Threat(
                id="top_down_disclosure",
                name="Top-down unauthorized disclosure",
                definition="The FM discloses information memorized from its (possibly private) pretraining data to the federated participants that personalize it.",
                aliases=("top-down unauthorized disclosure",),
            ),
            ["li2024position"],
        ),
        (
            Threat(
                id="bottom_up_propagation",
                name="Bottom-up confidentiality propagation",
                definition="A client's private data, absorbed into the shared model through its updates, propagates to other clients and to downstream users of the FM.",
                aliases=("bottom-up confidentiality propagation",),
            ),
            ["li2024position"],
        ),
        (
            Threat(
                id="gradient_inversion",
                name="Gradient inversion",
                definition="Reconstruction of a client's training data from its individual update.",
                aliases=("deep leakage from gradients",),
            ),
            ["zhu2019deep"],
        ),
    ]


def _mechanisms() -> list[tuple]:
    return [
        (
            Mechanism(
                id="client_drift",
                name="Client drift toward the majority",
                definition="With heterogeneous local optima and K > 1 local steps, FedAvg converges to a weighted fixed point sum p_i q_i c_i / sum p_i q_i, q_i = 1 - (1 - eta a_i)^K, pulled toward the clients that dominate the weights.",
                formal=r"\theta^\infty = \frac{\sum_i p_i q_i c_i}{\sum_i p_i q_i},\ q_i = 1 - (1 - \eta a_i)^K",
                aliases=("client drift", "client drift under non-IID data"),
            ),
            ["karimireddy2020scaffold"],
        ),
        (
            Mechanism(
                id="aggregate_masking",
                name="Aggregate masking of subgroups",
                definition="An aggregate over clients weights a minority of share pi by pi, so its excess risk is diluted: minority excess risk / aggregate excess risk = (1 - pi)/pi relative to the majority.",
                formal=r"\frac{\Delta R_{\min}}{\Delta R_{\mathrm{agg}}} \ \text{grows as}\ \frac{1-\pi}{\pi}",
            ),
            ["oh2026silent"],
        ),
        (
            Mechanism(
                id="dp_noise_disparity",
                name="DP noise falling hardest on minorities",
                definition="Clipping and noise cost accuracy most on under-represented groups, whose gradients are larger and rarer.",
                aliases=("disparate impact of DP",),
            ),
            ["bagdasaryan2019differential"],
        ),
        (
            Mechanism(
                id="bias_transmission",
                name="Bias transmission from the FM",
                definition="A foundation model pretrained with spurious correlation r0 > 0 carries weight on mu_spu that personalization inherits (frozen coordinates, teacher targets).",
                formal=r"\langle \theta_c, \mu_{\mathrm{spu}} \rangle \approx \langle \theta_0, \mu_{\mathrm{spu}} \rangle \ne 0",
            ),
            ["li2024position"],
        ),
        (
            Mechanism(
                id="spurious_reliance",
                name="Reliance on the spurious direction",
                definition="Local data in which label and attribute are correlated makes mu_spu predictive, and local training puts weight on it.",
                formal=r"\partial \langle \theta_c, \mu_{\mathrm{spu}} \rangle / \partial r_c > 0",
            ),
            ["sagawa2020distributionally"],
        ),
        (
            Mechanism(
                id="prior_mismatch",
                name="Prior mismatch of the confidence map",
                definition="Label shift moves the Bayes-optimal bias by log(pi_c(+)/pi_c(-)); a personal model that keeps the FM's confidence map is miscalibrated by that amount.",
                formal=r"b^*_c - b^*_0 = \log\frac{\pi_c(+)}{\pi_c(-)} - \log\frac{\pi_0(+)}{\pi_0(-)}",
            ),
            ["saerens2002adjusting", "ovadia2019can"],
        ),
        (
            Mechanism(
                id="alignment_overwrite",
                name="Overwrite of the alignment direction",
                definition="The local task's optimum differs from the FM along the alignment direction u; weakly anchored local steps move the model along u. Under proximal tuning the displacement is sum_i h_i/(h_i + lambda) <theta_task - theta_0, e_i><e_i, u>.",
                formal=r"\langle \theta^* - \theta_0, u \rangle = \sum_i \frac{h_i}{h_i + \lambda}\langle \theta_{\mathrm{task}} - \theta_0, e_i\rangle \langle e_i, u\rangle",
            ),
            ["qi2024fine"],
        ),
        (
            Mechanism(
                id="personal_overfitting",
                name="Overfitting of the personal model",
                definition="With few local samples and many local steps the personal model fits sampling noise: a train-test gap and overconfident scores.",
            ),
            ["li2021ditto"],
        ),
        (
            Mechanism(
                id="domain_overspecialization",
                name="Over-specialization to the local domain",
                definition="Adapting to a shifted local domain distorts the pretrained solution and loses accuracy on the base world and on other clients' domains.",
                aliases=("feature distortion",),
            ),
            ["kumar2022fine"],
        ),
        (
            Mechanism(
                id="erosion_accumulation",
                name="Accumulation of per-round erosion",
                definition="Each round's small displacement along the alignment direction is carried into the next global model, so degradations too small to see in a round add up over rounds.",
            ),
            ["oh2026silent"],
        ),
        (
            Mechanism(
                id="majority_dominance",
                name="Dominance of resource-rich clients",
                definition="Clients that participate more often contribute more updates, so the aggregate follows their distribution.",
                aliases=("participation resource disparity effect",),
            ),
            ["li2024position"],
        ),
        (
            Mechanism(
                id="minority_underrepresentation",
                name="Underrepresented demographic attributes",
                definition="A protected group that is rare in the federation's data receives little weight in training and in every aggregate.",
                aliases=("underrepresented demographic attributes",),
            ),
            ["li2024position"],
        ),
    ]


def _modes() -> list[tuple]:
    return [
        (
            FailureMode(
                id="amplified_bias",
                index=1,
                layer="data",
                name="Amplified bias",
                gist="Personalizing on skewed local data amplifies group disparities; privacy hinders central audit.",
                definition="The deployed model's positive-rate gap between groups exceeds the gap in the client's own labels (directional bias amplification), and its weight on the spurious direction grows relative to the FM.",
                metric="directional bias amplification [P(yhat=1|a=1) - P(yhat=1|a=0)] - [P(y=1|a=1) - P(y=1|a=0)] on the client's own distribution, and the spurious-weight ratio <theta_c, mu_spu>/<theta_0, mu_spu> (this package's formalization)",
                formal=r"\mathrm{BA}_c = [P_c(\hat y{=}1 \mid a{=}1) - P_c(\hat y{=}1 \mid a{=}0)] - [P_c(y{=}1 \mid a{=}1) - P_c(y{=}1 \mid a{=}0)]",
                worse="higher",
            ),
            ["oh2026silent", "wang2021directional"],
        ),
        (
            FailureMode(
                id="confidence_miscalibration",
                index=2,
                layer="data",
                name="Confidence miscalibration",
                gist="Confidence decouples from accuracy under shift; aggregation masks localized overconfident errors.",
                definition="The deployed model's confidence, through the FM's confidence map, no longer matches its accuracy on the client's own distribution; the gap between worst-client and aggregate ECE is the masking.",
                metric="classwise expected calibration error (binned E|P_c(y=1 | p) - p|, both classes) of each personal model on its own distribution, exact by 1-D quadrature over the Gaussian score, upper decile over clients; the top-label ECE (Guo et al.) beside it; worst-client ECE minus aggregate ECE is the masking (this package's formalization)",
                formal=r"\mathrm{ECE}_c = \mathbb{E}_{s}\,|P_c(y{=}1 \mid s) - \sigma(s)|,\ s = \theta_c^\top \tilde x",
                worse="higher",
            ),
            ["oh2026silent", "guo2017calibration", "kull2019beyond", "nixon2019measuring", "ovadia2019can"],
        ),
        (
            FailureMode(
                id="fairness_collapse",
                index=3,
                layer="model",
                name="Fairness collapse",
                gist="Aggregating adapters tuned to divergent client distributions widens the performance gap between groups while mean accuracy holds.",
                definition="The accuracy gap between the best- and the worst-served group, pooled over the clients' deployed personal models, grows beyond the FM's gap on the same clients while mean accuracy is flat or improving.",
                metric="growth over the FM's of the pooled group accuracy gap max_a Acc_a - min_a Acc_a of the deployed personal models, counted while mean client accuracy stays within fairness_mean_tolerance of the FM's; the spread of client accuracies (mean minus worst decile) is the named alternative fairness_metric = client_spread (this package's formalization)",
                formal=r"\Delta^{\mathrm{fair}}_t = \mathrm{gap}(\theta_{1:N,t}) - \mathrm{gap}(\theta_0) \ \wedge\ \bar A_t \ge \bar A_0 - \tau,\ \mathrm{gap} = \max_a \mathrm{Acc}_a - \min_a \mathrm{Acc}_a",
                worse="higher",
            ),
            ["oh2026silent", "hardt2016equality", "li2020fair"],
        ),
        (
            FailureMode(
                id="adaptation_misalignment",
                index=4,
                layer="model",
                name="Adaptation misalignment",
                gist="Overfitting narrow local objectives degrades general capability and safety within a round.",
                definition="Within one round, the K local steps lower the model's base-world (P0) accuracy and probe alignment score relative to the model the round started from.",
                metric="per client and round: drop of P0 accuracy and of probe alignment A(theta) from theta_g to theta_c after K local steps (this package's formalization)",
                formal=r"\Delta_t^{\mathrm{mis}} = [\mathrm{Acc}_{P_0}(\theta_g) - \mathrm{Acc}_{P_0}(\theta_c)] + [A(\theta_g) - A(\theta_c)]",
                worse="higher",
            ),
            ["oh2026silent", "qi2024fine"],
        ),
        (
            FailureMode(
                id="out_of_domain_degradation",
                index=5,
                layer="system",
                name="Out-of-domain degradation",
                gist="Over-specialization to a local domain weakens cross-client and zero-shot generalization.",
                definition="The personal model's accuracy on other clients' distributions and on the base world falls below the FM's.",
                metric="accuracy of each personal model on a fixed random subset of other clients' distributions and on P0, relative to the FM (this package's formalization)",
                formal=r"\mathrm{Acc}_{P_{c'}}(\theta_0) - \mathrm{Acc}_{P_{c'}}(\theta_c),\ c' \ne c",
                worse="higher",
            ),
            ["oh2026silent", "kumar2022fine"],
        ),
        (
            FailureMode(
                id="alignment_erosion",
                index=6,
                layer="system",
                name="Alignment erosion",
                gist="Small per-round safety/persona degradations accumulate across aggregation rounds and stay hidden.",
                definition="The probe alignment score of the global model and of the deployed models declines slowly over rounds relative to theta_0.",
                metric="A(theta_0) - A(theta_t) over rounds, A(theta) = Phi(-theta^T mu_h / sqrt(theta^T Sigma_h theta)), for the global model and the deployed models (this package's formalization)",
                formal=r"A(\theta) = \Phi\!\left(-\frac{\theta^\top \tilde\mu_h}{\sqrt{\theta^\top \Sigma_h \theta}}\right),\ A(\theta_0) - A(\theta_t) \uparrow",
                worse="higher",
            ),
            ["oh2026silent", "qi2024fine"],
        ),
    ]


def _access() -> list[tuple]:
    return [
        (
            Access(
                id="per_client_values",
                name="Per-client values",
                definition="Any individual client's update, statistic or metric.",
            ),
            [],
        ),
        (
            Access(
                id="personalized_models",
                name="The personalized models",
                definition="The personal models the clients deploy (direct model access).",
            ),
            [],
        ),
        (
            Access(
                id="raw_client_data", name="Raw client data", definition="The clients' own training or evaluation data."
            ),
            [],
        ),
        (
            Access(
                id="group_labels",
                name="Group labels",
                definition="Clients' protected attributes, used to stratify statistics.",
            ),
            [],
        ),
        (Access(id="global_model", name="The global model", definition="The aggregated model the server holds."), []),
        (
            Access(
                id="public_probe_set",
                name="A public probe set",
                definition="Public probe requests (alignment) and a public sample of the base world P0.",
            ),
            [],
        ),
        (
            Access(
                id="secure_sums",
                name="Secure sums",
                definition="Sums over at least m participants of client-computed vectors or scalars.",
            ),
            [],
        ),
    ]


def _observables() -> list[tuple]:
    return [
        (
            Observable(
                id="noised_update_sum",
                name="Noised secure sum of updates",
                definition="The (DP-noised) sum of the participants' clipped updates.",
            ),
            ["secure_sums"],
        ),
        (
            Observable(
                id="aggregate_metrics",
                name="Aggregate client-reported metrics",
                definition="Secure-aggregated, DP-noised mean train loss and accuracy reported by participants.",
            ),
            ["secure_sums"],
        ),
        (
            Observable(
                id="group_stratified_metrics",
                name="Group-stratified aggregate metrics",
                definition="Secure sums of metrics stratified by the clients' protected attribute.",
            ),
            ["secure_sums", "group_labels"],
        ),
        (
            Observable(
                id="global_probe_scores",
                name="Global-model probe scores",
                definition="The server's evaluation of the global model on the public probe set and the public P0 sample.",
            ),
            ["global_model", "public_probe_set"],
        ),
        (
            Observable(
                id="federated_eval_reports",
                name="Federated evaluation reports",
                definition="Secure-aggregated, DP-noised scores of the personal models on public probes and P0 samples, computed on the clients.",
            ),
            ["secure_sums", "public_probe_set"],
        ),
        (
            Observable(
                id="participant_counts",
                name="Participant counts",
                definition="The number of clients that reported in each round (released with Gaussian noise under central DP, an accounted release).",
            ),
            [],
        ),
        (
            Observable(
                id="individual_updates",
                name="Individual client updates",
                definition="Each participant's update Delta_c = theta_c - theta_g.",
            ),
            ["per_client_values"],
        ),
        (
            Observable(
                id="personal_model_audit",
                name="Audit of the personal models",
                definition="Evaluation of every personal model on its client's held-out data.",
            ),
            ["personalized_models", "raw_client_data"],
        ),
    ]


def _detectors() -> list[tuple]:
    """(node, references, observables, {mode: scope})."""
    return [
        (
            Detector(
                id="aggregate_monitor",
                name="Aggregate performance monitor",
                definition="Alarms when the aggregate reported train loss or accuracy deteriorates: the baseline every FL benchmark uses.",
            ),
            ["mcmahan2017communication"],
            ["aggregate_metrics", "participant_counts"],
            {},
        ),
        (
            Detector(
                id="group_stratified_monitor",
                name="Group-stratified secure-aggregated monitor",
                definition="Alarms when the DP-noised gap between group-stratified aggregate metrics exceeds its calibrated threshold.",
            ),
            ["hardt2016equality"],
            ["group_stratified_metrics"],
            {"amplified_bias": "deployed", "fairness_collapse": "deployed"},
        ),
        (
            Detector(
                id="server_probe_eval",
                name="Server-side probe evaluation",
                definition="The server evaluates the global model on the public probe set and a public P0 sample.",
            ),
            ["oh2026silent"],
            ["global_probe_scores"],
            {"alignment_erosion": "global", "out_of_domain_degradation": "global"},
        ),
        (
            Detector(
                id="federated_evaluation",
                name="Federated evaluation",
                definition="Clients evaluate public probes and P0 samples on their personal models and report through secure aggregation with DP.",
            ),
            ["oh2026silent"],
            ["federated_eval_reports", "participant_counts"],
            {
                "confidence_miscalibration": "deployed",
                "adaptation_misalignment": "deployed",
                "out_of_domain_degradation": "deployed",
                "alignment_erosion": "deployed",
            },
        ),
        (
            Detector(
                id="update_direction_monitor",
                name="Update-direction monitor",
                definition="Projects the noised aggregate update on the alignment and spurious directions and alarms on a calibrated drift.",
            ),
            ["oh2026silent"],
            ["noised_update_sum"],
            {"alignment_erosion": "global", "amplified_bias": "global"},
        ),
        (
            Detector(
                id="cusum_detector",
                name="Sequential change detector (CUSUM)",
                definition="A one-sided CUSUM on the DP-noised aggregate and global-probe streams.",
                aliases=("CUSUM",),
            ),
            ["page1954continuous"],
            ["aggregate_metrics", "global_probe_scores", "participant_counts"],
            {"alignment_erosion": "global"},
        ),
        (
            Detector(
                id="bayesian_changepoint",
                name="Bayesian change-point detector",
                definition="Posterior probability of a change in the DP-noised aggregates given the public noise scale (numpyro).",
            ),
            ["adams2007bayesian"],
            ["aggregate_metrics", "global_probe_scores", "participant_counts"],
            {"alignment_erosion": "global"},
        ),
        (
            Detector(
                id="update_inspection",
                name="Per-client update inspection",
                definition="Inspects each client's update, which reveals its personal model to the server.",
            ),
            ["blanchard2017machine"],
            ["individual_updates"],
            {
                "amplified_bias": "deployed",
                "adaptation_misalignment": "deployed",
                "out_of_domain_degradation": "deployed",
                "alignment_erosion": "deployed",
            },
        ),
        (
            Detector(
                id="central_audit",
                name="Central audit of personal models",
                definition="Evaluates every personal model on its client's held-out data: the oracle that the privacy constraints rule out.",
            ),
            ["oh2026silent"],
            ["personal_model_audit"],
            {m: "deployed" for m in MODE_COLUMNS},
        ),
    ]


def _mitigations() -> list[tuple]:
    """(node, references, targets, required access)."""
    return [
        (
            Mitigation(
                id="q_ffl",
                name="q-fair federated learning",
                definition="Reweights clients by loss^q in aggregation, interpolating FedAvg (q=0) and minimax fairness (q->inf).",
            ),
            ["li2020fair"],
            ["fairness_collapse", "majority_dominance"],
            [],
        ),
        (
            Mitigation(
                id="prior_correction",
                name="Label-shift bias correction",
                definition="Shift the personal model's bias by log(pi_c(+)/pi_c(-)) - log(pi_0(+)/pi_0(-)).",
            ),
            ["saerens2002adjusting"],
            ["prior_mismatch", "confidence_miscalibration"],
            [],
        ),
        (
            Mitigation(
                id="robust_aggregation",
                name="Byzantine-robust aggregation",
                definition="Aggregate with a robust rule (coordinate-wise median, trimmed mean, norm bounding, Krum), "
                "which needs the individual updates.",
            ),
            ["blanchard2017machine", "yin2018byzantine", "sun2019can"],
            ["universal_evasion"],
            ["per_client_values"],
        ),
        (
            Mitigation(
                id="alignment_anchoring",
                name="Alignment anchoring",
                definition="A strong proximal anchor to theta_0 along the alignment direction during local steps.",
            ),
            ["li2021ditto"],
            ["alignment_overwrite", "alignment_erosion"],
            [],
        ),
        (
            Mitigation(
                id="group_dro", name="Group DRO", definition="Minimize the worst group's risk instead of the average."
            ),
            ["sagawa2020distributionally"],
            ["spurious_reliance", "fairness_collapse"],
            ["group_labels"],
        ),
        (
            Mitigation(
                id="drift_correction",
                name="Drift correction (control variates)",
                definition="Correct local steps with control variates so local optima do not pull the aggregate.",
            ),
            ["karimireddy2020scaffold"],
            ["client_drift"],
            [],
        ),
        (
            Mitigation(
                id="adaptive_switching",
                name="Adaptive switching to public-data rounds",
                definition="The server alternates federated rounds on private data with centralized optimization on public data (the base world P0), re-anchoring the global model.",
                aliases=("federated foundation models", "FFM adaptive switching"),
            ),
            ["yu2023federated"],
            ["erosion_accumulation", "domain_overspecialization"],
            ["public_probe_set"],
        ),
    ]


# (kind, source, target) causal and structural edges
_CAUSAL: list[tuple[str, str, str]] = [
    # causes of mechanisms
    ("causes", "label_shift", "client_drift"),
    ("causes", "attribute_imbalance", "client_drift"),
    ("causes", "covariate_shift", "client_drift"),
    ("causes", "concept_shift", "client_drift"),
    ("causes", "full_finetuning", "client_drift"),
    ("causes", "attribute_imbalance", "minority_underrepresentation"),
    ("causes", "teacher_mixing", "bias_transmission"),
    ("causes", "head_only", "bias_transmission"),
    ("causes", "spurious_correlation", "spurious_reliance"),
    ("causes", "full_finetuning", "spurious_reliance"),
    ("causes", "label_shift", "prior_mismatch"),
    ("causes", "temporal_drift", "prior_mismatch"),
    ("causes", "full_finetuning", "alignment_overwrite"),
    ("causes", "subspace", "alignment_overwrite"),
    ("causes", "concept_shift", "alignment_overwrite"),
    ("causes", "covariate_shift", "alignment_overwrite"),
    ("causes", "full_finetuning", "personal_overfitting"),
    ("causes", "proximal", "personal_overfitting"),
    ("causes", "covariate_shift", "domain_overspecialization"),
    ("causes", "concept_shift", "domain_overspecialization"),
    ("causes", "full_finetuning", "domain_overspecialization"),
    ("causes", "alignment_overwrite", "erosion_accumulation"),
    ("causes", "temporal_drift", "erosion_accumulation"),
    ("causes", "external_fm_poisoning", "bias_transmission"),
    ("causes", "external_fm_poisoning", "alignment_overwrite"),
    ("causes", "universal_evasion", "alignment_overwrite"),
    # mechanisms -> modes
    ("causes", "spurious_reliance", "amplified_bias"),
    ("causes", "bias_transmission", "amplified_bias"),
    ("causes", "minority_underrepresentation", "amplified_bias"),
    ("causes", "majority_dominance", "amplified_bias"),
    ("causes", "dp_noise_disparity", "amplified_bias"),
    ("causes", "prior_mismatch", "confidence_miscalibration"),
    ("causes", "personal_overfitting", "confidence_miscalibration"),
    ("causes", "client_drift", "fairness_collapse"),
    ("causes", "majority_dominance", "fairness_collapse"),
    ("causes", "minority_underrepresentation", "fairness_collapse"),
    ("causes", "dp_noise_disparity", "fairness_collapse"),
    ("causes", "alignment_overwrite", "adaptation_misalignment"),
    ("causes", "domain_overspecialization", "adaptation_misalignment"),
    ("causes", "domain_overspecialization", "out_of_domain_degradation"),
    ("causes", "client_drift", "out_of_domain_degradation"),
    ("causes", "personal_overfitting", "out_of_domain_degradation"),
    ("causes", "spurious_reliance", "out_of_domain_degradation"),
    ("causes", "erosion_accumulation", "alignment_erosion"),
    ("causes", "alignment_overwrite", "alignment_erosion"),
    # constraints and personalizations that enable
    ("enables", "partial_participation", "client_drift"),
    ("enables", "partial_participation", "erosion_accumulation"),
    ("enables", "participation_disparity", "majority_dominance"),
    ("enables", "client_dropout", "majority_dominance"),
    ("enables", "central_dp", "dp_noise_disparity"),
    ("enables", "local_dp", "dp_noise_disparity"),
    ("enables", "secure_aggregation", "aggregate_masking"),
    ("enables", "no_personal_model_access", "aggregate_masking"),
    ("enables", "no_raw_data_access", "aggregate_masking"),
    ("enables", "no_attribute_use", "aggregate_masking"),
    ("enables", "byzantine_clients", "universal_evasion"),
    ("enables", "teacher_mixing", "external_fm_poisoning"),
    ("enables", "proximal", "erosion_accumulation"),
    # amplification
    ("amplifies", "spurious_correlation", "bias_transmission"),
    ("amplifies", "attribute_imbalance", "dp_noise_disparity"),
    ("amplifies", "minority_underrepresentation", "dp_noise_disparity"),
    ("amplifies", "label_shift", "personal_overfitting"),
    ("amplifies", "subspace", "bias_transmission"),
    # masking
    ("masks", "aggregate_masking", "fairness_collapse"),
    ("masks", "aggregate_masking", "amplified_bias"),
    ("masks", "aggregate_masking", "confidence_miscalibration"),
    ("masks", "secure_aggregation", "alignment_erosion"),
    ("masks", "central_dp", "noised_update_sum"),
    ("masks", "central_dp", "aggregate_metrics"),
    ("masks", "central_dp", "group_stratified_metrics"),
    ("masks", "central_dp", "federated_eval_reports"),
    ("masks", "central_dp", "participant_counts"),
    ("masks", "local_dp", "noised_update_sum"),
    ("masks", "local_dp", "aggregate_metrics"),
    ("masks", "local_dp", "group_stratified_metrics"),
    ("masks", "local_dp", "federated_eval_reports"),
    ("masks", "local_dp", "individual_updates"),
    ("masks", "partial_participation", "aggregate_metrics"),
    ("masks", "partial_participation", "federated_eval_reports"),
    ("masks", "partial_participation", "group_stratified_metrics"),
    ("masks", "client_dropout", "aggregate_metrics"),
    ("masks", "client_dropout", "federated_eval_reports"),
    ("masks", "byzantine_clients", "aggregate_metrics"),
    ("masks", "byzantine_clients", "federated_eval_reports"),
    ("masks", "byzantine_clients", "noised_update_sum"),
    # access
    ("blocks", "secure_aggregation", "per_client_values"),
    ("blocks", "no_personal_model_access", "personalized_models"),
    ("blocks", "no_raw_data_access", "raw_client_data"),
    ("blocks", "no_attribute_use", "group_labels"),
    ("blocks", "no_public_probe", "public_probe_set"),
    # privacy threats the constraints defend against
    ("mitigates", "secure_aggregation", "gradient_inversion"),
    ("mitigates", "central_dp", "gradient_inversion"),
    ("mitigates", "local_dp", "gradient_inversion"),
    ("mitigates", "central_dp", "bottom_up_propagation"),
    ("mitigates", "local_dp", "bottom_up_propagation"),
]

#: The paper's influence figure (Oh & Bui): conceptual influences between modes.
INFLUENCES: list[tuple[str, str, str]] = [
    ("amplified_bias", "confidence_miscalibration", "primary"),
    ("amplified_bias", "fairness_collapse", "primary"),
    ("confidence_miscalibration", "adaptation_misalignment", "primary"),
    ("confidence_miscalibration", "out_of_domain_degradation", "primary"),
    ("fairness_collapse", "alignment_erosion", "primary"),
    ("out_of_domain_degradation", "alignment_erosion", "primary"),
    ("fairness_collapse", "adaptation_misalignment", "feedback"),
    ("adaptation_misalignment", "alignment_erosion", "feedback"),
    ("alignment_erosion", "amplified_bias", "feedback"),
]

_BENCHMARK_REFS = {
    "LEAF": "caldas2018leaf",
    "FedScale": "lai2022fedscale",
    "FLamby": "terrail2022flamby",
    "FedLLM-Bench": "ye2024fedllm",
    "FLHetBench": "zhang2024flhetbench",
    "PFLlib": "zhang2025pfllib",
    "HELM": "liang2023holistic",
    "BIG-bench": "srivastava2023beyond",
    "DecodingTrust": "wang2023decodingtrust",
    "JailbreakBench": "chao2024jailbreakbench",
    "TrustLLM": "huang2024trustllm",
    "HarmBench": "mazeika2024harmbench",
}

#: The access each benchmark category assumes (paper/main.tex, The taxonomy): federated
#: benchmarks read per-client system metrics in simulation; centralized ones query
#: the model directly.
BENCHMARK_ACCESS = {"Federated": ("per_client_values",), "Centralized": ("personalized_models",)}


_SIM = "silentfail.sim."
#: Where the simulation implements each node (dotted paths; resolved by the tests).
IMPLEMENTATIONS: dict[str, str] = {
    "full_finetuning": _SIM + "personalize.affine_map",
    "proximal": _SIM + "personalize.affine_map",
    "subspace": _SIM + "personalize.projector",
    "head_only": _SIM + "personalize.projector",
    "teacher_mixing": _SIM + "personalize.teacher_moments",
    "label_shift": _SIM + "shifts.label_shift",
    "attribute_imbalance": _SIM + "shifts.attribute_imbalance",
    "spurious_correlation": _SIM + "shifts.spurious_correlation",
    "covariate_shift": _SIM + "shifts.covariate_shift",
    "concept_shift": _SIM + "shifts.concept_shift",
    "temporal_drift": _SIM + "shifts.interpolate",
    "secure_aggregation": _SIM + "mechanism.secure_aggregate",
    "central_dp": _SIM + "mechanism.secure_aggregate",
    "local_dp": _SIM + "mechanism.local_noise",
    "partial_participation": _SIM + "mechanism.participants",
    "participation_disparity": _SIM + "population.participation",
    "client_dropout": _SIM + "mechanism.participants",
    "no_raw_data_access": _SIM + "mechanism.Aggregate",
    "no_personal_model_access": _SIM + "mechanism.Aggregate",
    "no_attribute_use": _SIM + "mechanism.Aggregate",
    "no_public_probe": _SIM + "observe.available_access",
    "byzantine_clients": _SIM + "adversary.crafted_updates",
    "robust_aggregation": _SIM + "aggregators.AGGREGATORS",
    "external_fm_poisoning": _SIM + "personalize.teacher_moments",
    "universal_evasion": _SIM + "adversary.crafted_updates",
    "amplified_bias": _SIM + "metrics.directional_bias_amplification",
    "confidence_miscalibration": _SIM + "metrics.calibration",
    "fairness_collapse": _SIM + "metrics.group_accuracy_gap",
    "adaptation_misalignment": _SIM + "metrics.within_round_drop",
    "out_of_domain_degradation": _SIM + "metrics.out_of_domain_drop",
    "alignment_erosion": _SIM + "metrics.alignment_erosion",
    "aggregate_monitor": _SIM + "detectors.aggregate_statistic",
    "group_stratified_monitor": _SIM + "detectors.group_statistic",
    "server_probe_eval": _SIM + "detectors.probe_statistic",
    "federated_evaluation": _SIM + "detectors.fedeval_statistic",
    "update_direction_monitor": _SIM + "detectors.direction_statistic",
    "cusum_detector": _SIM + "detectors.cusum_statistic",
    "bayesian_changepoint": _SIM + "detectors.changepoint_statistic",
    "update_inspection": _SIM + "detectors.inspection_statistic",
    "central_audit": _SIM + "detectors.audit_statistic",
}


def benchmark_id(name: str) -> str:
    """Node id of a benchmark name, e.g. 'FedLLM-Bench' -> 'bench_fedllm_bench'.

    Args:
        name: the benchmark's name.

    Returns:
        The node id.
    """
    return "bench_" + "".join(ch if ch.isalnum() else "_" for ch in name.lower())


def _add_cites(tax: Taxonomy, node_id: str, refs: list[str]) -> None:
    for ref in refs:
        tax.add_edge(node_id, ref, "cites")


@lru_cache(maxsize=1)
def _builtin() -> Taxonomy:
    tax = Taxonomy()
    for key, entry in BIBTEX.items():
        tax.add_node(Reference(id=key, name=TITLES[key], definition=TITLES[key], bibtex=entry))
    for group in (_personalizations(), _shifts(), _constraints(), _threats(), _mechanisms(), _modes()):
        for node, refs in group:
            tax.add_node(node.model_copy(update={"implementation": IMPLEMENTATIONS.get(node.id, "")}))
            _add_cites(tax, node.id, refs)
    for node, _ in _access():
        tax.add_node(node)
    for node, needs in _observables():
        tax.add_node(node)
        for acc in needs:
            tax.add_edge(node.id, acc, "requires")
    for node, refs, observes, detects in _detectors():
        tax.add_node(node.model_copy(update={"implementation": IMPLEMENTATIONS.get(node.id, "")}))
        _add_cites(tax, node.id, refs)
        needs: set[str] = set()
        for obs in observes:
            tax.add_edge(node.id, obs, "observes")
            needs.update(tax.successors(obs, "requires"))
        for acc in sorted(needs):
            tax.add_edge(node.id, acc, "requires")
        for mode, scope in detects.items():
            tax.add_edge(node.id, mode, "detects", scope=scope)
    for node, refs, targets, needs in _mitigations():
        tax.add_node(node)
        _add_cites(tax, node.id, refs)
        for tgt in targets:
            tax.add_edge(node.id, tgt, "mitigates")
        for acc in needs:
            tax.add_edge(node.id, acc, "requires")
    for kind, src, tgt in _CAUSAL:
        tax.add_edge(src, tgt, kind)
    for src, tgt, strength in INFLUENCES:
        tax.add_edge(src, tgt, "influences", strength=strength)
    for order, row in enumerate(csv.DictReader(io.StringIO(benchmark_matrix_csv()))):
        bid = benchmark_id(row["benchmark"])
        tax.add_node(
            Benchmark(
                id=bid,
                name=row["benchmark"],
                category=row["category"],
                primary_focus=row["primary_focus"],
                order=order,
                definition=f"{row['category']} benchmark ({row['primary_focus']}), rated against the six modes by Oh & Bui.",
            )
        )
        _add_cites(tax, bid, [_BENCHMARK_REFS[row["benchmark"]], "oh2026silent"])
        for acc in BENCHMARK_ACCESS[row["category"]]:
            tax.add_edge(bid, acc, "requires")
        for mode in MODE_COLUMNS:
            if row[mode] != "none":
                tax.add_edge(bid, mode, "covers", level=row[mode])
    return tax


#: Taxonomy extensions registered by plugins (``silentfail.plugins.register_taxonomy_extension``),
#: applied in order on top of the built-in graph by :func:`builtin_taxonomy`.
PLUGIN_EXTENSIONS: list[dict] = []


#: (the extensions it was built from, the extended taxonomy), rebuilt when the list
#: changes. It holds the extension objects themselves, compared by identity: an id alone
#: could be reused by a new extension once an unregistered one is freed.
_plugin_taxonomy: tuple[tuple[dict, ...], Taxonomy] | None = None


def builtin_taxonomy() -> Taxonomy:
    """A fresh copy of the built-in taxonomy (safe to extend), with the nodes and edges
    of every plugin's registered extension.

    Returns:
        A Taxonomy the caller may modify.
    """
    global _plugin_taxonomy
    if not PLUGIN_EXTENSIONS:
        return _builtin().copy()
    current = tuple(PLUGIN_EXTENSIONS)
    cached = _plugin_taxonomy
    if cached is None or len(cached[0]) != len(current) or any(a is not b for a, b in zip(cached[0], current)):
        from .validate import extend

        tax = _builtin()
        for data in current:
            tax, _ = extend(tax, data)  # validated when it was registered
        cached = _plugin_taxonomy = (current, tax)
    return cached[1].copy()
