"""How hard XLA optimizes a program, chosen by the work the program will run.

A program that runs little (a literature claim's arms, an influence experiment, one
``simulate`` call at the default size) spends most of its wall time in XLA's optimizing
compiler: the literature claims compile 107 programs in 143 s of a 168 s run, and six
influence programs take 82 s of a 98 s run (``benchmarks/README.md``, Compile effort).
Compiled without LLVM's optimizations and without the fusion emitters, the same
programs compile 3.4x faster and run about 1.8x slower. So a program whose call runs at
most :data:`FAST_WORK` client-rounds on the CPU is compiled with :data:`FAST_COMPILE`;
a larger one with XLA's full pipeline. The two compilations compute the same numbers up
to float round-off (the test suite runs every program with these options).

``SILENTFAIL_COMPILE`` overrides the choice: ``auto`` (default), ``fast`` or ``full``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax

#: XLA's options for a fast compile: LLVM's optimizations and the fusion emitters off
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
#: client-rounds of one call (runs x clients x rounds) up to which a program compiles fast
FAST_WORK = 2_000_000
MODES = ("auto", "fast", "full")


def mode() -> str:
    """The compile effort asked for by ``SILENTFAIL_COMPILE`` (default ``auto``).

    Returns:
        ``auto``, ``fast`` or ``full``.

    Raises:
        ValueError: any other value, naming the variable.
    """
    value = os.environ.get("SILENTFAIL_COMPILE", "auto")
    if value not in MODES:
        raise ValueError(f"SILENTFAIL_COMPILE = {value!r}: expected one of {', '.join(MODES)}")
    return value


def fast(work: float) -> bool:
    """Whether a call of ``work`` client-rounds is compiled with :data:`FAST_COMPILE`: on
    the CPU backend up to :data:`FAST_WORK` (``auto``), or as ``SILENTFAIL_COMPILE`` says.

    Args:
        work: the call's client-rounds.

    Returns:
        True for the fast compile.
    """
    m = mode()
    if m != "auto":
        return m == "fast"
    return jax.default_backend() == "cpu" and work <= FAST_WORK


class EffortJit:
    """``jax.jit(fun)`` twice, with XLA's full pipeline and with :data:`FAST_COMPILE`; a
    call picks one by the work of the call (:func:`fast`): the runs in the leading axis
    of the argument ``runs_arg`` (1 without one) times the scenario's clients and rounds
    (the Config in the first argument). ``lower`` is the full one's; the cache size is
    both's.

    Args:
        fun: the function.
        runs_arg: the index of the positional argument whose leading axis counts the runs, or None.
        **jit_kwargs: ``jax.jit``'s keyword arguments (``static_argnames``).
    """

    def __init__(self, fun: Callable, runs_arg: int | None = None, **jit_kwargs: Any) -> None:
        self.full = jax.jit(fun, **jit_kwargs)
        self.fast = jax.jit(fun, compiler_options=FAST_COMPILE, **jit_kwargs)
        self.runs_arg = runs_arg
        functools.update_wrapper(self, fun)  # the function's name, module and docstring

    def work(self, args: Sequence[Any]) -> float:
        """The client-rounds of a call: runs x clients x rounds.

        Args:
            args: the call's positional arguments (a Config first).

        Returns:
            The client-rounds the call runs.
        """
        sc = args[0].static.scenario  # the compiled shape (a traced field keeps its bucket value)
        runs = 1 if self.runs_arg is None else len(args[self.runs_arg])
        return float(runs) * sc.population.num_clients * sc.federation.rounds

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            return self.full(*args, **kwargs)  # inside another trace: compiler options belong to the outer jit
        return (self.fast if fast(self.work(args)) else self.full)(*args, **kwargs)

    def lower(self, *args: Any, **kwargs: Any):
        """The full pipeline's ``lower`` (benchmarks time XLA's optimized program).

        Args:
            *args: the call's arguments.
            **kwargs: its keyword arguments (the static ones).

        Returns:
            JAX's Lowered program.
        """
        return self.full.lower(*args, **kwargs)

    def _cache_size(self) -> int:
        return self.full._cache_size() + self.fast._cache_size()


def effort_jit(runs_arg: int | None = None, **jit_kwargs: Any) -> Callable[[Callable], EffortJit]:
    """A decorator: :class:`EffortJit` of the function.

    Args:
        runs_arg: the positional argument whose leading axis counts the runs.
        **jit_kwargs: ``jax.jit``'s keyword arguments.

    Returns:
        The decorator.
    """
    return lambda fun: EffortJit(fun, runs_arg, **jit_kwargs)
