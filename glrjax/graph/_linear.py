"""A primitive for linear maps with their own transpose: how the Laplacian kernels get
derivative rules that work in forward mode and keep reverse mode's speed and memory.

``linear_call(kernel, res, lin)`` evaluates ``kernel.apply(res, lin)``, which must be linear
in the tuple ``lin`` (``res``: residual operands, e.g. the weights). Rules:

- transpose (reverse mode): ``kernel.transpose(res, ct, lin_avals)``, e.g. the same fast
  stencil for a symmetric L (JAX's own transpose of slices is pads, of gathers scatters);
- JVP: linear in ``lin`` (the same primitive on the tangents); w.r.t. ``res`` by JAX's JVP
  of ``kernel.apply`` (only used for higher-order derivatives);
- batching: ``jax.vmap`` of the kernel's methods;
- lowering: the plain JAX code of ``kernel.apply`` (XLA fuses it as before).

A kernel is a frozen (hashable) dataclass with ``apply(res, lin) -> array`` and
``transpose(res, ct, lin_avals) -> tuple`` (one cotangent per ``lin``, shaped like it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from glrjax.graph._base import unbroadcast

__all__ = ["linear_call"]

linear_p = Primitive("glrjax_linear")


def linear_call(kernel, res, lin):
    """``kernel.apply(res, lin)`` as one primitive (linear in ``lin``, custom transpose)."""
    res, lin = tuple(res), tuple(lin)
    return linear_p.bind(*res, *lin, kernel=kernel, num_res=len(res))


def _split(args, num_res):
    return tuple(args[:num_res]), tuple(args[num_res:])


def _impl(*args, kernel, num_res):
    res, lin = _split(args, num_res)
    return kernel.apply(res, lin)


def _abstract_eval(*avals, kernel, num_res):
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals]
    out = jax.eval_shape(lambda *a: _impl(*a, kernel=kernel, num_res=num_res), *specs)
    return jax.core.ShapedArray(out.shape, out.dtype)


def _jvp(primals, tangents, *, kernel, num_res):
    res, lin = _split(primals, num_res)
    res_dot, lin_dot = _split(tangents, num_res)
    out = linear_p.bind(*primals, kernel=kernel, num_res=num_res)
    terms = []
    if any(type(t) is not ad.Zero for t in lin_dot):
        lin_dot = tuple(ad.instantiate_zeros(t) for t in lin_dot)
        terms.append(linear_p.bind(*res, *lin_dot, kernel=kernel, num_res=num_res))
    moving = [i for i, t in enumerate(res_dot) if type(t) is not ad.Zero]
    if moving:  # d/d(res): JAX's JVP of the plain code (higher-order derivatives only)

        def of_res(*r):
            full = list(res)
            for i, v in zip(moving, r, strict=True):
                full[i] = v
            return kernel.apply(tuple(full), lin)

        _, t = jax.jvp(of_res, [res[i] for i in moving], [res_dot[i] for i in moving])
        terms.append(t)
    if not terms:
        return out, ad.Zero.from_primal_value(out)
    return out, sum(terms[1:], terms[0])


def _transpose(ct, *args, kernel, num_res):
    res, lin = _split(args, num_res)
    if any(ad.is_undefined_primal(r) for r in res):
        raise NotImplementedError(
            f"{type(kernel).__name__} is linear in its signal only; it cannot be transposed "
            "with respect to its residual operands."
        )
    avals = tuple(
        (tuple(a.aval.shape), a.aval.dtype) if ad.is_undefined_primal(a) else None for a in lin
    )
    if type(ct) is ad.Zero:
        cts = [ad.Zero(a.aval) if ad.is_undefined_primal(a) else None for a in lin]
    else:
        full = tuple(
            av if av is not None else (tuple(jnp.shape(a)), jnp.result_type(a))
            for av, a in zip(avals, lin, strict=True)
        )
        out = kernel.transpose(res, ct, full)
        cts = [o if av is not None else None for o, av in zip(out, avals, strict=True)]
    return [None] * num_res + cts


@dataclasses.dataclass(frozen=True)
class _Vmapped:
    """A kernel mapped over axis 0 of its ``lin`` operands and of the mapped ``res``."""

    kernel: object
    res_axes: tuple

    def apply(self, res, lin):
        return jax.vmap(self.kernel.apply, in_axes=(self.res_axes, 0))(res, lin)

    def transpose(self, res, ct, lin_avals):
        inner = tuple((shape[1:], dtype) for shape, dtype in lin_avals)

        def one(r, c):
            return tuple(self.kernel.transpose(r, c, inner))

        return jax.vmap(one, in_axes=(self.res_axes, 0))(res, ct)


def _batch(args, dims, *, kernel, num_res):
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    res, lin = _split(args, num_res)
    res_dims, lin_dims = _split(dims, num_res)
    res = tuple(
        r if d is None else jnp.moveaxis(r, d, 0) for r, d in zip(res, res_dims, strict=True)
    )
    res_axes = tuple(None if d is None else 0 for d in res_dims)
    lin = tuple(
        jnp.broadcast_to(a, (size,) + jnp.shape(a)) if d is None else jnp.moveaxis(a, d, 0)
        for a, d in zip(lin, lin_dims, strict=True)
    )
    out = linear_p.bind(*res, *lin, kernel=_Vmapped(kernel, res_axes), num_res=num_res)
    return out, 0


linear_p.def_impl(_impl)
linear_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[linear_p] = _jvp
ad.primitive_transposes[linear_p] = _transpose
batching.primitive_batchers[linear_p] = _batch
mlir.register_lowering(linear_p, mlir.lower_fun(_impl, multiple_results=False))


def unbroadcast_to(ct, aval):
    """``ct`` summed back to ``aval = (shape, dtype)`` (the axes broadcasting added)."""
    return unbroadcast(ct, jax.ShapeDtypeStruct(*aval))
