"""Power laws of a cell optimum in model size N and token budget D, and which form the data supports.

Three forms, each a straight line in logs fitted by least squares to the cells' optima:

- ``N,D``: opt = c·N^a·D^b (needs several sizes and budgets that do not move together);
- ``N``: opt = c·N^a (the budget does not vary, or does not help);
- ``C``: opt = c·C^g with C = 6·N·D (the size does not vary, or runs follow one tokens-per-parameter
  ratio so that N and D cannot be told apart).

:func:`choose_form` fits every form the design allows and keeps the one with the lowest
leave-one-size-out error of log opt (a richer form must beat a simpler one by ``RICHER_MUST_WIN``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

FORMS = ("N,D", "N", "C")
RICHER_MUST_WIN = 0.9  # the N,D form is kept only when its held-out error is below 0.9x a simpler form's
COLLINEAR = 0.05  # log N and log D this close to a line (smallest/largest singular value) cannot be split
# Cells whose compute 6·N·D spans less than this (in decades) share one budget: an IsoFLOP budget's
# cells differ by a few percent (tokens are set from the model's real FLOPs per token, not 6·N), which
# a C law would read as a steep trend. Budgets of a real design are 2x or more apart.
ONE_BUDGET_DEX = 0.1


@dataclass
class OptimumLaw:
    """opt = coef · N^a · D^b (form ``N,D``), coef · N^a (``N``) or coef · (6ND)^g (``C``)."""

    form: str
    log_coef: float
    """ln(coef). Kept in logs: coef is the value at N = 1 (or C = 1), which a steep law (a bootstrap draw's)
    puts beyond a float's range although every prediction at real sizes is finite."""
    exponents: dict[str, float]
    """``{"N": a, "D": b}``, ``{"N": a}`` or ``{"C": g}``."""
    log_resid_std: float
    """Residual std of ln(opt) (NaN with no degree of freedom left)."""
    n_points: int

    @property
    def coef(self) -> float:
        """The law's coefficient (inf where it overflows a float; predictions do not use it)."""
        return math.exp(self.log_coef) if self.log_coef < math.log(sys.float_info.max) else math.inf

    def __call__(self, n, d):
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return np.exp(_design(self.form, n, d) @ np.array([self.log_coef, *self.exponents.values()]))

    @classmethod
    def from_dict(cls, d: dict) -> OptimumLaw:
        """The law of a fit.json ``hparams.<name>.law`` entry."""
        return cls(
            d["form"],
            float(d["log_coef"]) if d.get("log_coef") is not None else math.log(float(d["coef"])),
            {k: float(v) for k, v in d["exponents"].items()},
            float(d.get("log_resid_std") or "nan"),
            int(d.get("n_points", 0)),
        )

    def to_dict(self) -> dict:
        main = self.exponents.get("N", self.exponents.get("C"))
        return {
            "form": self.form,
            "coef": self.coef if math.isfinite(self.coef) else None,  # null where it overflows a float
            "log_coef": self.log_coef,
            "exponents": self.exponents,
            "exponent": main,
            "log_resid_std": self.log_resid_std,
            "n_points": self.n_points,
        }


def _design(form: str, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    ln, ld = np.log(np.atleast_1d(n)), np.log(np.atleast_1d(d))
    one = np.ones_like(ln)
    if form == "N,D":
        return np.column_stack([one, ln, ld])
    if form == "N":
        return np.column_stack([one, ln])
    return np.column_stack([one, np.log(6.0) + ln + ld])


def form_possible(form: str, n, d) -> bool:
    """Whether the cells at sizes ``n`` and budgets ``d`` determine the form's exponents."""
    ln, ld = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(d, dtype=float))
    if form == "N":
        return np.unique(np.round(ln, 6)).size >= 2
    if form == "C":  # with one budget, compute is the size again: the N form says the same more plainly
        return (np.unique(np.round(ld, 6)).size >= 2
                and np.ptp(ln + ld) >= ONE_BUDGET_DEX * math.log(10))
    if ln.size < 4 or np.unique(np.round(ln, 6)).size < 2 or np.unique(np.round(ld, 6)).size < 2:
        return False
    centred = np.column_stack([ln - ln.mean(), ld - ld.mean()])
    s = np.linalg.svd(centred, compute_uv=False)
    return bool(s[-1] > COLLINEAR * s[0])


def fit_optimum_law(form: str, n, d, opt) -> OptimumLaw | None:
    """Least squares of ln(opt) on the form's logs; None when the cells cannot determine it."""
    n, d, opt = (np.asarray(x, dtype=float) for x in (n, d, opt))
    if not form_possible(form, n, d):
        return None
    design = _design(form, n, d)
    theta, *_ = np.linalg.lstsq(design, np.log(opt), rcond=None)
    dof = opt.size - design.shape[1]
    resid = np.log(opt) - design @ theta
    std = float(np.sqrt(resid @ resid / dof)) if dof > 0 else float("nan")
    names = {"N,D": ("N", "D"), "N": ("N",), "C": ("C",)}[form]
    return OptimumLaw(
        form,
        float(theta[0]),
        {k: float(v) for k, v in zip(names, theta[1:], strict=True)},
        std,
        int(opt.size),
    )


def held_out_error(form: str, n, d, opt) -> float | None:
    """RMS error of ln(opt) over cells predicted by the form fitted without their size (None: impossible)."""
    n, d, opt = (np.asarray(x, dtype=float) for x in (n, d, opt))
    errors = []
    for size in np.unique(n):
        out = n == size
        law = fit_optimum_law(form, n[~out], d[~out], opt[~out])
        if law is None:
            return None
        errors.extend(np.log(law(n[out], d[out])) - np.log(opt[out]))
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else None


def choose_form(n, d, opt) -> tuple[str | None, dict[str, float | None], str]:
    """The form to use for these cell optima, every form's held-out error, and why, in words."""
    possible = [f for f in FORMS if form_possible(f, n, d)]
    errors = {f: held_out_error(f, n, d, opt) for f in possible}
    if not possible:
        return None, errors, "one size and one budget only"
    scored = {f: e for f, e in errors.items() if e is not None}
    if not scored:  # too few sizes to hold one out: the richest form the design allows
        return possible[0], errors, "too few sizes to compare forms on held-out sizes: richest possible form"
    simple = [f for f in ("N", "C") if f in scored]
    best_simple = min(simple, key=scored.get) if simple else None
    if "N,D" in scored and (best_simple is None or scored["N,D"] < RICHER_MUST_WIN * scored[best_simple]):
        return "N,D", errors, "lowest leave-one-size-out error"
    if best_simple is None:
        return possible[0], errors, "the only form the design allows"
    if "N,D" not in possible and len(simple) == 2 and math.isclose(scored["N"], scored["C"], rel_tol=1e-6):
        # one tokens-per-parameter ratio: compute is a power of size, so both forms are one law, and
        # the compute form is the one that says D grows with N
        return "C", errors, "the runs keep one tokens-per-parameter ratio: N and D cannot be told apart"
    if "N,D" not in possible:
        return (
            best_simple,
            errors,
            ("the budget does not vary apart from the size" if "N" in possible else "the size does not vary"),
        )
    return (
        best_simple,
        errors,
        f"N,D did not lower the leave-one-size-out error by {100 * (1 - RICHER_MUST_WIN):.0f}%",
    )
