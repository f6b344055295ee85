"""silentfail.sim: the JAX simulation of the stylized world (paper/main.tex, The stylized model)."""


def clear_caches() -> None:
    """Drop every compiled program and every cached result. The engine's compiled
    programs live in JAX's own cache, one program per distinct scenario (a
    :class:`~silentfail.sim.config.Config` argument) and shape; the NUTS samplers of
    ``sim.estimate`` and the cached results (calibrations, null attributions, which
    fields trace, the source digest of the on-disk result cache, the real dataset's cell
    pools) are kept beside it. A process that works through many scenarios can
    free them here (compiled code is mapped memory, and the kernel caps the number of
    mappings a process may hold)."""
    import jax

    from . import batch, estimate, realdata, result_cache, verdict

    for fn in (
        batch._traceable,
        verdict._calibration,
        verdict._null_attribution,
        result_cache.code_digest,
        realdata.digit_cells,
        realdata._digits,
    ):
        fn.cache_clear()
    estimate.clear_cache()  # the compiled NUTS samplers
    jax.clear_caches()
