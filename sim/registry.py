"""The registries the engine iterates over: failure modes and detector names.

A failure mode is a small record, :class:`Mode`. The six built-in modes (paper/main.tex,
The six modes) are computed by the engine's own kernels (``sim/ground_truth.py``); a
mode a plugin adds brings its round metric, a function of the round's per-client
outputs (:class:`RoundView`), and the engine appends it to the round's mode vector.
Everything downstream (thresholds, the trace, verdicts, sweeps, figures, reports)
iterates over :data:`MODES`, a live view of the registry: a name imported once sees
every mode registered later.

This module imports neither JAX nor the engine; ``silentfail.plugins`` is the public
registration API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple


class RoundView(NamedTuple):
    """What a plugin mode's round metric sees of one round (inside ``jit``).

    Attributes:
        scenario: the Scenario (static).
        ctx: the world, the FM theta_0 and the public constants (``population.Context``).
        pop: the clients' arrays (``population.Population``; ``weight`` pools them).
        theta_global: (D,) the global model this round.
        client: the per-client outputs of ``ground_truth.client_pass`` (leading axis:
            client), e.g. ``theta``, ``acc``, ``alignment``, ``train_test_gap``.
    """

    scenario: Any
    ctx: Any
    pop: Any
    theta_global: Any
    client: dict


class Mode(NamedTuple):
    """A failure mode.

    Attributes:
        id: the taxonomy node id (an identifier).
        name: a human name.
        description: what the round metric measures (one line).
        threshold: default failure threshold; the mode fails when its metric stays
            above it (``thresholds.by_mode`` overrides it for a plugin mode).
        metric: ``RoundView -> ()`` round metric (higher is worse); None for the six
            built-in modes, whose metrics the engine's kernels compute.
        persist: rounds the metric must stay above the threshold (None: ``thresholds.persist``).
        reference: citation of the mode's definition.
    """

    id: str
    name: str
    description: str
    threshold: float
    metric: Callable[[RoundView], Any] | None = None
    persist: int | None = None
    reference: str = ""

    @property
    def builtin(self) -> bool:
        """Whether the engine's kernels compute it (one of the six modes)."""
        return self.metric is None


_OH = "Oh & Bui (2026), Silent Failures in Federated Personalization of Foundation Models, KDD"

MODE_REGISTRY: dict[str, Mode] = {
    m.id: m
    for m in (
        Mode("amplified_bias", "Amplified bias", "worst-decile directional bias amplification", 0.05, reference=_OH),
        Mode("confidence_miscalibration", "Confidence miscalibration", "worst-decile client ECE", 0.05, reference=_OH),
        Mode("fairness_collapse", "Fairness collapse", "growth of the group accuracy gap", 0.03, reference=_OH),
        Mode(
            "adaptation_misalignment", "Adaptation misalignment", "worst-decile within-round drop", 0.05, reference=_OH
        ),
        Mode("out_of_domain_degradation", "Out-of-domain degradation", "worst-decile OOD drop", 0.05, reference=_OH),
        Mode("alignment_erosion", "Alignment erosion", "drop of the global alignment score", 0.05, reference=_OH),
    )
}
#: The six built-in modes, in the order of the engine's kernels.
BUILTIN_MODES: tuple[str, ...] = tuple(MODE_REGISTRY)

#: The detector ids, in registration order (``sim/detectors.py`` holds the records).
DETECTOR_NAMES: list[str] = [
    "aggregate_monitor",
    "group_stratified_monitor",
    "server_probe_eval",
    "federated_evaluation",
    "update_direction_monitor",
    "cusum_detector",
    "bayesian_changepoint",
    "update_inspection",
    "central_audit",
]


class LiveNames(Sequence[str]):
    """A read-only, live sequence of the ids in a registry (it sees later additions).

    It behaves like the tuple it replaces: iteration, ``len``, indexing, ``in``,
    ``+`` with a tuple, equality with a tuple of the same ids.
    """

    def __init__(self, source: Callable[[], Sequence[str]]):
        self._source = source

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._source()))

    def __len__(self) -> int:
        return len(self._source())

    def __getitem__(self, i):
        return tuple(self._source())[i]

    def __contains__(self, item: object) -> bool:
        return item in self._source()

    def __add__(self, other):
        return tuple(self) + tuple(other)

    def __radd__(self, other):
        return tuple(other) + tuple(self)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, LiveNames)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: The ids of every registered mode: the six built-in first, then the plugins' (live).
MODES = LiveNames(lambda: tuple(MODE_REGISTRY))
#: The ids of every registered detector (live).
DETECTORS = LiveNames(lambda: DETECTOR_NAMES)


def check_new_id(kind: str, ident: str, registry) -> None:
    """Refuse a registration whose id is not an identifier or is taken.

    Args:
        kind: what is registered ("mode", "detector", ...), for the message.
        ident: the new id.
        registry: the ids registered so far (a dict or list).

    Raises:
        ValueError: naming the id and what is wrong with it.
    """
    if not (isinstance(ident, str) and ident.isidentifier()):
        raise ValueError(f"{kind} id {ident!r} must be an identifier")
    if ident in registry:
        raise ValueError(f"{kind} {ident!r} is already registered")


def plugin_modes() -> tuple[Mode, ...]:
    """The registered modes that are not built in, in registration order.

    Returns:
        The Mode records.
    """
    return tuple(m for m in MODE_REGISTRY.values() if not m.builtin)


def add_mode(mode: Mode) -> Mode:
    """Add ``mode`` to the registry (``silentfail.plugins.register_mode`` is the public way).

    Args:
        mode: a mode with a new identifier id, a round metric and a positive threshold.

    Returns:
        The mode.

    Raises:
        ValueError: naming what is wrong with the record.
    """
    check_new_id("mode", mode.id, MODE_REGISTRY)
    if mode.metric is None or not callable(mode.metric):
        raise ValueError(f"mode {mode.id!r}: metric must be a function of a RoundView")
    if not (isinstance(mode.threshold, (int, float)) and mode.threshold > 0):
        raise ValueError(f"mode {mode.id!r}: threshold must be a positive number, got {mode.threshold!r}")
    if mode.persist is not None and not (isinstance(mode.persist, int) and mode.persist >= 1):
        raise ValueError(f"mode {mode.id!r}: persist must be an integer >= 1 or None, got {mode.persist!r}")
    MODE_REGISTRY[mode.id] = mode
    return mode
