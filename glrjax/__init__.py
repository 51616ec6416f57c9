"""glrjax: pure, jit-compiled solvers for graph signal processing and sparse learning.

Every solver returns ``(solution, Info)`` and is differentiated the way its
``gradient=`` argument says: :class:`Unrolled`, :class:`Checkpointed`,
:class:`Truncated` or :class:`Implicit`.
"""

from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.iterate import Info
from glrjax.l2g import L2GParams, init_l2g_params, l2g, l2g_unrolled
from glrjax.linear import cg, jacobi
from glrjax.primal_dual import PrimalDual, primal_dual
from glrjax.sharding import shard_batch

__version__ = "0.1.0"

__all__ = [
    "Checkpointed",
    "GradientMode",
    "Implicit",
    "Info",
    "L2GParams",
    "PrimalDual",
    "Truncated",
    "Unrolled",
    "cg",
    "init_l2g_params",
    "jacobi",
    "l2g",
    "l2g_unrolled",
    "primal_dual",
    "shard_batch",
]
