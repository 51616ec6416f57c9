"""glrjax: pure, jit-compiled solvers for graph signal processing and sparse learning.

Every solver returns ``(solution, Info)`` and is differentiated the way its
``gradient=`` argument says: :class:`Unrolled`, :class:`Checkpointed`,
:class:`Truncated` or :class:`Implicit`.
"""

from glrjax import prox
from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.iterate import Info
from glrjax.linear import cg, jacobi
from glrjax.proximal import fista, lipschitz, pgd
from glrjax.reconstruction import (
    correlations,
    debias,
    lambda_max,
    lambda_path,
    linear_reconstruction,
    reconstruction_objective,
    support,
)

__version__ = "0.1.0"

__all__ = [
    "Checkpointed",
    "GradientMode",
    "Implicit",
    "Info",
    "Truncated",
    "Unrolled",
    "cg",
    "correlations",
    "debias",
    "fista",
    "jacobi",
    "lambda_max",
    "lambda_path",
    "linear_reconstruction",
    "lipschitz",
    "pgd",
    "prox",
    "reconstruction_objective",
    "support",
]
