"""glrjax: pure, jit-compiled solvers for graph signal processing and sparse learning.

Every solver returns ``(solution, Info)`` and is differentiated the way its
``gradient=`` argument says: :class:`Unrolled`, :class:`Checkpointed`,
:class:`Truncated` or :class:`Implicit`.
"""

from glrjax.glr import glr_filter
from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.graph import (
    EdgeGraph,
    GridGraph,
    degree,
    laplacian_matvec,
    num_edges,
    to_dense,
    window_offsets,
)
from glrjax.iterate import Info
from glrjax.linear import cg, jacobi

__version__ = "0.1.0"

__all__ = [
    "Checkpointed",
    "EdgeGraph",
    "GradientMode",
    "GridGraph",
    "Implicit",
    "Info",
    "Truncated",
    "Unrolled",
    "cg",
    "degree",
    "glr_filter",
    "jacobi",
    "laplacian_matvec",
    "num_edges",
    "to_dense",
    "window_offsets",
]
