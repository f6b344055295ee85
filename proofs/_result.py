"""A closed-form result: symbols with assumptions, a symbolic derivation from the
model's definitions (the derivation is the proof), the simplified statement, its
LaTeX, a numeric (lambdified, JAX-compatible) version, and the conditions under which
it holds (the silentfail reference paper (paper/main.tex), Theory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One step of a derivation: what was done, and the expression it produced."""

    text: str
    expr: sp.Basic


@dataclass(frozen=True)
class Result:
    """A derived result. ``statement`` is an equation lhs = rhs whose rhs the
    derivation produced; ``numeric`` evaluates the rhs (jax.numpy) in the order of
    ``arguments``."""

    name: str
    title: str
    statement: sp.Eq
    steps: tuple[Step, ...]
    arguments: tuple[sp.Symbol, ...]
    conditions: str
    reference: str
    extras: dict[str, sp.Basic] = field(default_factory=dict)
    numeric_impl: Callable | None = None  # for statements over n clients (sums), given directly

    @property
    def rhs(self) -> sp.Basic:
        """The statement's right-hand side."""
        return self.statement.rhs

    def numeric(self, module: str = "jax") -> Callable:
        """The statement's right-hand side as a function of ``arguments``.

        Args:
            module: ``jax`` or ``numpy`` (sympy's lambdify target).

        Returns:
            f(*arguments).
        """
        if self.numeric_impl is not None:
            return self.numeric_impl
        return sp.lambdify(self.arguments, self.rhs, modules=_modules(module))

    def latex(self) -> str:
        """The statement in LaTeX.

        Returns:
            The LaTeX of lhs = rhs.
        """
        return sp.latex(self.statement)

    def pretty(self) -> str:
        """The statement, pretty-printed (unicode).

        Returns:
            The text.
        """
        return sp.pretty(self.statement, use_unicode=True)

    def latex_block(self) -> str:
        """A LaTeX paragraph: the statement, its conditions, and the derivation steps.

        Returns:
            The LaTeX paragraph.
        """
        lines = [
            f"\\paragraph{{{self.title}.}}",
            f"\\begin{{equation}}\\label{{eq:{self.name}}}{self.latex()}\\end{{equation}}",
            f"Holds when {_tex_text(self.conditions)}. Source: {_tex_text(self.reference)}.",
            "\\begin{enumerate}",
        ]
        lines += [f"\\item {_tex_text(s.text)}: $\\displaystyle {sp.latex(s.expr)}$" for s in self.steps]
        lines.append("\\end{enumerate}")
        return "\n".join(lines)


def _modules(module: str) -> list:
    """lambdify modules with the special functions the results use."""
    if module == "jax":
        import jax.scipy.special as jsp

        return [{"erf": jsp.erf, "erfc": jsp.erfc, "erfinv": jsp.erfinv}, "jax"]
    import scipy.special as ssp

    return [{"erf": ssp.erf, "erfc": ssp.erfc, "erfinv": ssp.erfinv}, module]


_TEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\\": r"\textbackslash{}",
}


def _tex_text(text: str) -> str:
    """Plain text made safe for LaTeX's text mode (one pass, so escapes are not re-escaped)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
