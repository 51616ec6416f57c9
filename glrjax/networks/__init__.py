"""Unrolled graph networks for interpolation: uGLR and uGTV (Do et al., NeurIPS 2024).

Each layer learns a sparse graph from the current estimate (a shallow CNN's features,
Mahalanobis affinities normalised per node, the analogue of self-attention) and solves
one interpolation problem on it (:func:`glrjax.glr_interpolate` or
:func:`glrjax.gtv_interpolate`). Parameters are plain pytrees trained with optax.
"""

from glrjax.networks._unrolled import UnrolledParams
from glrjax.networks.features import (
    bilinear_interpolate,
    cnn_apply,
    cnn_init,
    normalized_graph,
    num_params,
)
from glrjax.networks.uglr import UGLRConfig, uglr, uglr_init
from glrjax.networks.ugtv import UGTVConfig, ugtv, ugtv_init

__all__ = [
    "UGLRConfig",
    "UGTVConfig",
    "UnrolledParams",
    "bilinear_interpolate",
    "cnn_apply",
    "cnn_init",
    "normalized_graph",
    "num_params",
    "uglr",
    "uglr_init",
    "ugtv",
    "ugtv_init",
]
