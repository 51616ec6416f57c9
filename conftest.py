"""Root conftest: doctests and tests run with float64 available."""

import jax

jax.config.update("jax_enable_x64", True)
