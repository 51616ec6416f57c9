"""glrjax: pure, jit-compiled solvers for graph signal processing and sparse learning.

Every solver returns ``(solution, Info)`` and is differentiated the way its
``gradient=`` argument says: :class:`Unrolled`, :class:`Checkpointed`,
:class:`Truncated` or :class:`Implicit`.
"""

from glrjax import curse, gem, gnn, networks, prox
from glrjax._module import make_callable
from glrjax.gem import (
    GEMNetConfig,
    GEMNetParams,
    e_step,
    gem_fit,
    gem_network,
    gem_network_init,
    inverse_edge_terms,
    m_step,
)
from glrjax.glr import glr_filter, gtv_denoise
from glrjax.gradients import Checkpointed, GradientMode, Implicit, Truncated, Unrolled
from glrjax.graph import (
    AbstractGraph,
    EdgeGraph,
    GridGraph,
    degree,
    edge_difference,
    knn_graph,
    laplacian_matvec,
    num_edges,
    to_dense,
    window_offsets,
)
from glrjax.interpolate import glr_interpolate, gtv_interpolate
from glrjax.iterate import RESULTS, Info
from glrjax.l2g import L2GParams, init_l2g_params, l2g_unrolled
from glrjax.l2g_vae import L2GVAEParams, VAEParams, init_l2g_vae_params, l2g_vae_loss
from glrjax.linear import cg, chebyshev_steps, jacobi
from glrjax.networks import UGLRConfig, UGTVConfig, uglr, uglr_init, ugtv, ugtv_init
from glrjax.primal_dual import PrimalDual
from glrjax.proximal import fista, lipschitz, pgd
from glrjax.reconstruction import (
    conv_patches,
    correlations,
    debias,
    lambda_max,
    lambda_path,
    linear_reconstruction,
    reconstruction_objective,
    support,
)
from glrjax.sharding import shard_batch
from glrjax.spectral import spectral_clustering

# glrjax.l2g and glrjax.primal_dual stay modules (import glrjax.l2g as m; m.synthetic_dataset)
# and stay callable as their function of the same name (glrjax.l2g(z, alpha, beta)).
l2g = make_callable("glrjax.l2g", "l2g")
primal_dual = make_callable("glrjax.primal_dual", "primal_dual")
l2g_vae = make_callable("glrjax.l2g_vae", "l2g_vae")

__version__ = "0.1.0"

__all__ = [
    "AbstractGraph",
    "Checkpointed",
    "EdgeGraph",
    "GEMNetConfig",
    "GEMNetParams",
    "GradientMode",
    "GridGraph",
    "Implicit",
    "Info",
    "L2GParams",
    "L2GVAEParams",
    "PrimalDual",
    "RESULTS",
    "Truncated",
    "UGLRConfig",
    "UGTVConfig",
    "Unrolled",
    "VAEParams",
    "cg",
    "chebyshev_steps",
    "conv_patches",
    "correlations",
    "curse",
    "debias",
    "degree",
    "e_step",
    "edge_difference",
    "fista",
    "gem",
    "gem_fit",
    "gem_network",
    "gem_network_init",
    "glr_filter",
    "glr_interpolate",
    "gnn",
    "gtv_denoise",
    "gtv_interpolate",
    "init_l2g_params",
    "init_l2g_vae_params",
    "inverse_edge_terms",
    "jacobi",
    "knn_graph",
    "l2g",
    "l2g_unrolled",
    "l2g_vae",
    "l2g_vae_loss",
    "lambda_max",
    "lambda_path",
    "laplacian_matvec",
    "linear_reconstruction",
    "lipschitz",
    "m_step",
    "networks",
    "num_edges",
    "pgd",
    "primal_dual",
    "prox",
    "reconstruction_objective",
    "shard_batch",
    "spectral",
    "spectral_clustering",
    "support",
    "to_dense",
    "uglr",
    "uglr_init",
    "ugtv",
    "ugtv_init",
    "window_offsets",
]
