"""silentfail.sim: the JAX simulation of the stylized world (paper/main.tex, The stylized model)."""


def clear_caches() -> None:
    """Drop every compiled program (ours and JAX's). Each distinct scenario compiles its
    own programs and keeps them for reuse; a process that works through many scenarios
    can free them here (compiled code is mapped memory, and the kernel caps the number
    of mappings a process may hold)."""
    import jax

    from . import batch, estimate, federate, literature, population, verdict

    for fn in (
        batch._compiled,
        batch._traceable,
        federate._compiled,
        literature._compiled,
        population._compiled_build,
        verdict._calibration,
        verdict._compiled_statistics,
        verdict._null_attribution,
    ):
        fn.cache_clear()
    estimate.clear_cache()  # the compiled NUTS samplers
    jax.clear_caches()
