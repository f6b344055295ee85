"""silentfail.proofs: sympy derivations of the closed forms (DESIGN.md section 7)."""
