"""Status codes of a solver run: ``Info.result`` holds one of :data:`RESULTS`.

The model is optimistix's ``RESULTS``: an int32 code travels through ``jit`` and ``vmap``
with the solution (no exceptions at run time, no sentinel values hidden in the residual),
and :meth:`RESULTS.message` says what it means and what to do.

>>> import glrjax
>>> int(glrjax.RESULTS.successful), int(glrjax.RESULTS.max_steps_reached)
(0, 1)
>>> glrjax.RESULTS.message(glrjax.RESULTS.nonfinite)[:40]
'a NaN or Inf appeared (in the input or i'
"""

from __future__ import annotations

import numpy as np

__all__ = ["RESULTS"]


class _Results:
    """The codes, as class attributes (Python ints), and their messages."""

    successful = 0
    max_steps_reached = 1
    nonfinite = 2
    breakdown = 3
    step_condition_violated = 4
    uncertified = 5
    stagnation = 6

    _messages = {
        0: "converged: the stopping quantity, recomputed at the returned point, is within "
        "tolerance.",
        1: "the iteration cap was reached before the tolerance: raise maxiter, loosen "
        "rtol/atol, or precondition the problem.",
        2: "a NaN or Inf appeared (in the input or in the iterates): check the inputs; the "
        "returned solution is NaN.",
        3: "the iteration broke down (a vanishing or non-positive curvature or a singular "
        "factorization): check that the operator is symmetric positive definite / the problem "
        "is well posed.",
        4: "the step sizes break the method's convergence condition (for primal-dual: "
        "tau*(L/2 + sigma*||K||^2) < 1): decrease them or leave them None.",
        5: "the solver's running stopping quantity reached the tolerance but the one "
        "recomputed at the returned point did not (for CG: the true residual b - Ax): the "
        "operator is probably not symmetric positive definite, or too ill-conditioned for "
        "this dtype; use float64, precondition, or loosen the tolerance.",
        6: "the iteration stagnated: the residual stopped decreasing above the tolerance "
        "(the tolerance is below what this dtype can reach on this problem): loosen it or "
        "use float64.",
    }

    def message(self, code) -> str:
        """What ``code`` (an int or a 0-d array) means and what to do about it."""
        code = int(np.asarray(code))
        return self._messages.get(code, f"unknown status code {code}")

    def name(self, code) -> str:
        """The attribute name of ``code``, e.g. ``'max_steps_reached'``."""
        code = int(np.asarray(code))
        for key, value in vars(_Results).items():
            if not key.startswith("_") and value == code:
                return key
        return f"unknown({code})"

    def __repr__(self):
        names = [
            k for k in vars(_Results) if not k.startswith("_") and k not in ("message", "name")
        ]
        return "RESULTS(" + ", ".join(f"{k}={getattr(self, k)}" for k in names) + ")"


RESULTS = _Results()
