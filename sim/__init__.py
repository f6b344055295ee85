"""silentfail.sim: the JAX simulation of the stylized world (DESIGN.md sections 2-6)."""
