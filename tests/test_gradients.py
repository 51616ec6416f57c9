"""Gradient-mode objects: frozen, hashable, static, validated on construction."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import glrjax
from glrjax.gradients import check_gradient


def test_modes_are_frozen_hashable_and_static():
    modes = [
        glrjax.Unrolled(),
        glrjax.Checkpointed(every=3),
        glrjax.Truncated(last=2),
        glrjax.Implicit(solver="gmres", tol=1e-8, maxiter=10, on_failure="ignore"),
    ]
    for m in modes:
        assert hash(m) == hash(dataclasses.replace(m))
        assert m == dataclasses.replace(m)
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.tol = 1.0
        # No array leaves: a mode crosses jit inside a pytree.
        assert jax.tree_util.tree_leaves(m) == []
    assert glrjax.Checkpointed(every=3) != glrjax.Checkpointed(every=4)

    @jax.jit
    def f(x, tree):
        return x * 2

    assert float(f(jnp.ones(()), {"mode": modes[3]})) == 2.0


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: glrjax.Checkpointed(every=0), ValueError, "every"),
        (lambda: glrjax.Checkpointed(every=2.0), TypeError, "every"),
        (lambda: glrjax.Truncated(last=-1), ValueError, "last"),
        (lambda: glrjax.Truncated(last=True), TypeError, "last"),
        (lambda: glrjax.Implicit(solver="bicgstab"), ValueError, "gmres"),
        (lambda: glrjax.Implicit(on_failure="raise"), ValueError, "on_failure"),
        (lambda: glrjax.Implicit(tol=-1.0), ValueError, "tol"),
        (lambda: glrjax.Implicit(maxiter=0), ValueError, "neumann"),
        (lambda: glrjax.Implicit(maxiter=1.5), TypeError, "maxiter"),
        (lambda: glrjax.Implicit(restart=0), ValueError, "restart"),
        (lambda: glrjax.Implicit(restart=2.5), TypeError, "restart"),
        (lambda: glrjax.Implicit(solver="cg", restart=5), ValueError, "GMRES only"),
    ],
)
def test_invalid_modes_raise_with_fix(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_neumann_allows_zero_terms():
    assert glrjax.Implicit(solver="neumann", maxiter=0).maxiter == 0


def test_check_gradient_rejects_non_modes():
    with pytest.raises(TypeError, match="Unrolled"):
        check_gradient(None)
    with pytest.raises(TypeError, match="instance"):
        check_gradient(glrjax.Implicit)
    assert check_gradient(glrjax.Unrolled()) == glrjax.Unrolled()
