"""Shape buckets: nearby configurations share one compiled program.

A single run (``sim.run.run``) is compiled for the scenario it runs, and every field
that sets a shape or a loop length is part of that program's key, in JAX's in-memory
cache and in the persistent compilation cache on disk alike. The round count is such a
field (the length of the round scan), and the one a theorist changes most often in an
edit-run loop. So the program is compiled for the round count's *bucket*,
:func:`rounds_bucket` (at most 25% above it, four buckets per octave), its first T
rounds are the run and the rest is dropped: a run of T rounds and one of T' rounds in
the same bucket are the same program, and a second process finds it in the compilation
cache.

Dropping rounds changes no number. Round t of the scan reads only the carry that rounds
0 .. t-1 left (the global model, the optimizer state and the key chain), never the
scan's length, so the first T rounds of a longer scan are bit for bit the T rounds of a
scan of T (``tests/sim/test_buckets.py``). The extra rounds cost run time, at most 25%
of the scan and none for a round count that is its own bucket (1 to 8, then 10, 12, 14,
16, 20, 24, 28, 32, 40, ...): the compile it saves is seconds, the rounds it adds are
milliseconds for the populations an edit-run loop uses.

The float fields a single run reads as numbers are traced (:func:`run_config`): they are
leaves of the program's :class:`~silentfail.sim.config.Config`, not part of its key, so a
run with another learning rate, shift strength or threshold is the same program too. A
float the engine reads in a Python branch or a shape (:data:`STATIC_FLOATS`, found by
tracing every preset, ``tests/sim/test_buckets.py``) stays in the key; a scenario whose
program cannot trace one of its floats (a plugin's model that branches on one) is
compiled with every field static, as before. A traced float is the same float32 number
the compiled constant was, so a traced run agrees with a static one to float round-off
(the arithmetic on it moves from the host's float64 and XLA's constant folding to the
program's float32).

What is not bucketed, and why: the population size N, because the population is a pure
function of (scenario, seed) and JAX's random draws of N clients are not the first N of
a larger draw (a bucketed N would move every recorded number); the local steps K and
the dimension d, which change the arithmetic itself.
"""

from __future__ import annotations

import jax

from .config import Config, substitute
from .params import numeric_field
from .scenario import Scenario, scenario_fields

#: buckets per octave of the round count (the waste is below 1 / BUCKETS_PER_OCTAVE)
BUCKETS_PER_OCTAVE = 4

#: float fields the engine reads in a Python branch or a shape (a sweep over one compiles
#: once per value, ``sim.batch.traceable``): a single run keeps them in its program's key
STATIC_FLOATS = frozenset(
    {
        "shifts.covariate_scale",
        "shifts.covariate_var_spread",
        "shifts.concept_angle",
        "federation.byzantine_fraction",
        "shifts.label_noise",
        "shifts.label_noise_minority",
    }
)

#: the value a traced float holds in the program's key (any: the engine reads the leaf)
CANONICAL = 0.0


def rounds_bucket(rounds: int) -> int:
    """The round count a run of ``rounds`` rounds is compiled for: the smallest multiple
    of g = 2^max(0, floor(log2 T) - 2) that is >= T, so T <= bucket < T (1 + 1/4).

    Args:
        rounds: T >= 1.

    Returns:
        The bucket (T itself for T <= 8 and for every multiple of g).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    g = 1 << max(0, rounds.bit_length() - 1 - (BUCKETS_PER_OCTAVE.bit_length() - 1))
    return -(-rounds // g) * g


def compiled_scenario(sc: Scenario) -> Scenario:
    """The scenario a single run's program is compiled for: ``sc`` with its round count
    raised to :func:`rounds_bucket` (the run reads the first ``sc.federation.rounds``
    rounds of it).

    Args:
        sc: the scenario.

    Returns:
        The bucketed scenario (``sc`` itself when the round count is its own bucket).
    """
    bucket = rounds_bucket(sc.federation.rounds)
    return sc if bucket == sc.federation.rounds else substitute(sc, {"federation.rounds": bucket})


def first_rounds(rounds: dict, n: int) -> dict:
    """The first ``n`` rounds of a scan's per-round outputs (leading axis: round).

    Args:
        rounds: a PyTree of (bucket, ...) arrays.
        n: the run's round count.

    Returns:
        The PyTree of (n, ...) arrays.
    """
    return jax.tree.map(lambda a: a[:n], rounds)


def traced_floats(sc: Scenario) -> tuple[str, ...]:
    """The dotted paths of the fields a single run traces: every field holding a float
    (not an int, a bool, None or a container) outside :data:`STATIC_FLOATS`.

    Args:
        sc: the scenario.

    Returns:
        The paths, in the scenario's field order (``scenario_fields``).
    """
    return tuple(
        f.path
        for f in scenario_fields()
        if isinstance(numeric_field(sc, f.path), float) and f.path not in STATIC_FLOATS
    )


def shared_config(sc: Scenario, exclude: tuple[str, ...] = (), static: dict | None = None) -> Config:
    """``sc`` as a :class:`~silentfail.sim.config.Config` whose :func:`traced_floats`
    (but those in ``exclude``) are leaves, their values in the key set to
    :data:`CANONICAL`: scenarios that differ only in those floats have one key.

    Args:
        sc: the scenario.
        exclude: paths left out (a sweep's axes, which the program traces itself).
        static: fields replaced in the key as well (``Config``'s ``static``).

    Returns:
        The Config.
    """
    paths = tuple(p for p in traced_floats(sc) if p not in exclude)
    values = tuple(numeric_field(sc, p) for p in paths)
    return Config(substitute(sc, {**dict.fromkeys(paths, CANONICAL), **(static or {})}), paths, values)


def run_config(sc: Scenario, trace: bool = True) -> Config:
    """The :class:`~silentfail.sim.config.Config` a single run is compiled for: the
    round count's bucket (:func:`compiled_scenario`) and, with ``trace``, its floats
    traced (:func:`shared_config`), so that scenarios differing in those floats or
    within a round bucket share it.

    Args:
        sc: the scenario.
        trace: trace the floats (False: every field static).

    Returns:
        The Config.
    """
    sc = compiled_scenario(sc)
    return shared_config(sc) if trace else Config(sc)
