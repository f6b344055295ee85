"""A closed-form result: symbols with assumptions, a symbolic derivation from the
model's definitions (the derivation is the proof), the simplified statement, its
LaTeX, a numeric (lambdified, JAX-compatible) version, and the conditions under which
it holds (the silentfail reference paper (paper/main.tex), Theory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp


class Phi(sp.Function):
    """The standard normal CDF, for printing: Phi(x) = (1 + erf(x / sqrt 2)) / 2."""

    def _latex(self, printer, exp=None):
        out = rf"\Phi\left({printer._print(self.args[0])}\right)"
        return out if exp is None else rf"{out}^{{{exp}}}"


class Quantile(sp.Function):
    """z_p, the standard normal p-quantile, for printing: z_p = sqrt(2) erfinv(2 p - 1)."""

    def _latex(self, printer, exp=None):
        out = rf"z_{{{printer._print(self.args[0])}}}"
        return out if exp is None else rf"{out}^{{{exp}}}"


def readable(expr: sp.Basic) -> sp.Basic:
    """An expression rewritten for reading, equal to ``expr``: erf, erfc and erfinv in
    the statistician's notation, erf(x) = 2 Phi(sqrt 2 x) - 1, erfc(x) = 2 Phi(-sqrt 2 x)
    and erfinv(u) = z_((1 + u) / 2) / sqrt 2, then a sum (the expression or a side of a
    relation) expanded one level so that Phi's constants cancel
    ((2 Phi(y) - 1) / 2 + 1/2 = Phi(y)); products stay factored.

    Args:
        expr: a sympy expression (or a relation of two).

    Returns:
        The rewritten expression.
    """
    out = expr.replace(sp.erfinv, lambda u: Quantile((1 + u) / 2) / sp.sqrt(2))
    out = out.replace(sp.erfc, lambda u: 2 * Phi(-sp.sqrt(2) * u))
    out = out.replace(sp.erf, lambda u: 2 * Phi(sp.sqrt(2) * u) - 1)

    def tidy(e):
        return sp.expand(e, deep=False) if isinstance(e, sp.Add) else e

    if isinstance(out, sp.Equality):
        return sp.Eq(*(tidy(side) for side in out.args), evaluate=False)
    return tidy(out)


#: LaTeX of the symbols whose names are words or compound quantities.
SYMBOL_TEX = {
    "Power": r"\mathrm{Power}",
    "Power_max": r"\mathrm{Power}_{\max}",
    "delta_min": r"\delta_{\min}",
    "Delta R_min": r"\Delta R_{\min}",
    "Delta R_agg": r"\Delta R_{\mathrm{agg}}",
    "ECE_c": r"\mathrm{ECE}_c",
    "P(Z > w)": r"P(Z > w)",
    "theta_task": r"\theta_{\mathrm{task}}",
    "<theta^* - theta_0, u>": r"\langle \theta^* - \theta_0, u \rangle",
    "theta^* - theta_0": r"\theta^* - \theta_0",
    "theta_lambda": r"\theta_\lambda",
    "x_{K,i}": r"x_{K,i}",
    "MSE": r"\mathrm{MSE}",
    "s2": r"s^2",
    "tau2": r"\tau^2",
}


def tex(expr: sp.Basic) -> str:
    """The LaTeX of an expression as a reader expects it (:func:`readable`, and the word
    and compound symbols of :data:`SYMBOL_TEX`).

    Args:
        expr: a sympy expression or relation.

    Returns:
        The LaTeX (math mode).

    Raises:
        ValueError: ``expr`` is a bare boolean (a relation sympy evaluated, such as a
            symbol equal to a matrix: a derivation step that states nothing).
    """
    if isinstance(expr, sp.logic.boolalg.BooleanAtom):
        raise ValueError(f"a derivation step is the bare boolean {expr}: build its relation with evaluate=False")
    names = {s: SYMBOL_TEX[s.name] for s in getattr(expr, "free_symbols", ()) if s.name in SYMBOL_TEX}
    return sp.latex(readable(expr), symbol_names=names)


@dataclass(frozen=True)
class Step:
    """One step of a derivation: what was done, and the expression it produced (never a
    bare boolean: a relation sympy would evaluate is built with ``evaluate=False``)."""

    text: str
    expr: sp.Basic

    def __post_init__(self) -> None:
        if isinstance(self.expr, (bool, sp.logic.boolalg.BooleanAtom)):
            raise ValueError(f"derivation step {self.text!r} is the bare boolean {self.expr}")


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
    notation: dict[str, str] = field(default_factory=dict)  # the statement's symbols (by name) and their meaning

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
        return tex(self.statement)

    def pretty(self) -> str:
        """The statement, pretty-printed (unicode).

        Returns:
            The text.
        """
        return sp.pretty(self.statement, use_unicode=True)

    def latex_block(self) -> str:
        """A LaTeX paragraph: the statement, its conditions, and the derivation steps; each
        display is set with ``\\fitmath`` (defined by the document: the expression at its
        natural size, scaled down to the line width when it is wider).

        Returns:
            The LaTeX paragraph.
        """
        where = "; ".join(f"${tex(sp.Symbol(k))}$: {_tex_text(v)}" for k, v in self.notation.items())
        lines = [
            f"\\paragraph{{{self.title}.}}",
            f"\\begin{{equation}}\\label{{eq:{self.name}}}\\fitmath{{{self.latex()}}}\\end{{equation}}",
            *([f"where {where}."] if where else []),
            f"Holds when {_tex_text(self.conditions)}. Source: {_tex_text(self.reference.replace(*SELF_REFERENCE))}.",
            "\\begin{enumerate}",
        ]
        lines += [f"\\item {_tex_text(s.text)}:\\par\\fitmath{{{tex(s.expr)}}}" for s in self.steps]
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


#: The project's name for the paper in references, and how the paper itself says it.
SELF_REFERENCE = ("the silentfail reference paper (paper/main.tex)", "this paper")

#: LaTeX commands of the texts' inline math and their plain-text reading (:func:`plain_text`).
_PLAIN = {
    r"\langle": "<",
    r"\rangle": ">",
    r"\le": "<=",
    r"\ge": ">=",
    r"\times": "x",
    r"\top": "T",
    r"\star": "*",
    r"\in": "in",
    r"\sum": "sum",
    r"\partial": "d",
    r"\,": " ",
}


def _tex_text(text: str) -> str:
    """A text (prose with inline math between ``$`` signs) for LaTeX: the prose made
    safe for text mode (one pass, so escapes are not re-escaped), the math kept as it is.

    Raises:
        ValueError: an unbalanced ``$``.
    """
    parts = text.split("$")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced $ in {text!r}")
    return "".join(f"${p}$" if i % 2 else "".join(_TEX_SPECIAL.get(ch, ch) for ch in p) for i, p in enumerate(parts))


def plain_text(text: str) -> str:
    """A text's plain reading for a terminal: the inline math's ``$`` signs dropped, its
    commands read as words or ASCII (``\\lambda`` -> ``lambda``, ``\\bar P`` -> ``P``).

    Args:
        text: prose with inline math.

    Returns:
        The plain text.
    """
    import re

    out = []
    for i, part in enumerate(text.split("$")):
        if i % 2:
            for cmd, word in _PLAIN.items():
                part = re.sub(re.escape(cmd) + r"(?![A-Za-z])", word, part)
            part = re.sub(r"\\bar\s*\{?(\w)\}?", r"\1bar", part)
            part = re.sub(r"\\(mathrm|mathbb|frac|hat)\b", "", part)
            part = re.sub(r"\\([A-Za-z]+)", r"\1", part).replace("{", "").replace("}", "")
        out.append(part)
    return "".join(out)
