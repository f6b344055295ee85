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

What is not bucketed, and why: the population size N, because the population is a pure
function of (scenario, seed) and JAX's random draws of N clients are not the first N of
a larger draw (a bucketed N would move every recorded number); the local steps K and
the dimension d, which change the arithmetic itself; and the float fields, which a
single run keeps static (a sweep traces them, ``sim.batch``).
"""

from __future__ import annotations

import jax

from .config import substitute
from .scenario import Scenario

#: buckets per octave of the round count (the waste is below 1 / BUCKETS_PER_OCTAVE)
BUCKETS_PER_OCTAVE = 4


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
