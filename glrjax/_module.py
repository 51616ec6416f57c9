"""Modules that are also their main function: ``glrjax.l2g`` and ``glrjax.primal_dual``.

``import glrjax.l2g as m`` gives the module (``m.synthetic_dataset``, ...), while
``glrjax.l2g(z, alpha, beta)`` keeps calling the function of the same name: the module's
class is swapped for a subclass of ``types.ModuleType`` whose ``__call__`` is that function.
"""

from __future__ import annotations

import inspect
import sys
import types

__all__ = ["CallableModule", "make_callable"]


class CallableModule(types.ModuleType):
    """Base class of the modules made callable by :func:`make_callable`."""


def make_callable(name: str, function: str):
    """Make ``sys.modules[name]`` callable as its attribute ``function``; return the module."""
    module = sys.modules[name]
    fn = getattr(module, function)

    def __call__(self, *args, **kwargs):
        return fn(*args, **kwargs)

    cls = type(f"{function}_module", (CallableModule,), {"__call__": __call__})
    module.__signature__ = inspect.signature(fn)
    module.__class__ = cls
    return module
