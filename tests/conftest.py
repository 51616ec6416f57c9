"""Shared test set-up: float64 available, a bounded and reproducible hypothesis profile."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The longest cases of the default run (measured, `--durations=60`, 2 cores): they run in
# CI's slow step (`-m slow`) instead, which keeps the README's test command shorter.
LONG = {
    "tests/test_gem.py::test_compare_case_gradient_matches_its_finite_difference_reference",
    "tests/test_gem.py::test_compare_case_float32_gradient_matches_the_float64_reference",
    "tests/test_gem.py::test_network_gradients_match_finite_differences_and_second_order_switch",
    "tests/test_networks.py::test_uglr_gradients_match_finite_differences[Unrolled]",
    "glrjax/compare.py::glrjax.compare.gem_compare_case",
    "tests/test_gem.py::test_network_float32_gradients_finite_in_every_mode[truncated]",
    "tests/test_sharding.py::test_sharded_batch_equals_single_device",
    "tests/test_gem.py::test_network_float32_gradients_finite_in_every_mode[implicit]",
    "tests/test_gem.py::test_network_float32_gradients_finite_in_every_mode[checkpointed]",
    "tests/test_l2g.py::test_example_smoke_run",
    "tests/test_primal_dual.py::test_step_schedules_get_unrolled_gradients",
    "tests/test_gem.py::test_network_float32_gradients_finite_in_every_mode[unrolled]",
    "tests/test_implicit.py::test_hessian_and_grad_of_grad_against_finite_differences",
    "tests/test_graph.py::test_forward_mode_of_the_laplacian_against_dense_and_finite_differences[grid-batched]",
    "tests/test_readme.py::test_readme_python_examples_run",
    "tests/test_gem.py::test_network_batch_of_graphs_are_independent_and_init_is_finite",
    "tests/test_networks.py::test_shapes_dtypes_and_parameter_count",
    "tests/test_contract.py::test_implicit_backward_failure_nan_by_default_finite_when_ignored[gem_e_step]",
    "tests/test_contract.py::test_check_grads_unrolled_family[gem_e_step-unrolled]",
    "tests/test_l2g_vae.py::test_float32_and_jit_vmap",
    "glrjax/gem/network.py::glrjax.gem.network.gem_network",
    "tests/test_l2g_vae.py::test_truncated_cuts_the_early_layers",
    "tests/test_contract.py::test_second_order_implicit_against_finite_differences[gem_e_step]",
    "tests/test_graph.py::test_forward_mode_of_the_laplacian_against_dense_and_finite_differences[knn]",
    "tests/test_contract.py::test_forward_mode_equals_reverse_mode[gem_e_step-truncated]",
    "tests/test_contract.py::test_forward_mode_equals_reverse_mode[gem_e_step-unrolled]",
    "tests/test_networks.py::test_uglr_gradients_match_finite_differences[Checkpointed]",
    "tests/test_reconstruction.py::test_seed_small_size_agrees_with_scikit_learn_and_jaxopt",
    "tests/test_contract.py::test_forward_mode_equals_reverse_mode[gem_e_step-checkpointed]",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-checkpointed-f32]",
    "tests/test_contract.py::test_forward_mode_equals_reverse_mode[gem_e_step-implicit]",
    "tests/test_cli.py::test_compare_one_problem_without_sweeps_is_quick_and_accurate",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-truncated-f64]",
    "tests/test_gem_estimators.py::test_implicit_m_step_matches_finite_differences_of_the_converged_m_step",
    "tests/test_linear.py::test_gradient_memory_scaling_per_mode",
    "tests/test_proximal.py::test_group_lasso_prox_args_gradient_and_vmap_over_lambda",
    "tests/test_contract.py::test_vmap_batches_problems_and_info[gem_e_step-truncated]",
    "tests/test_networks.py::test_uglr_gradients_match_finite_differences[Implicit]",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-truncated-f32]",
    "tests/test_gem.py::test_gem_fit_recovers_the_support_of_a_sparse_gmrf",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-unrolled-f64]",
    "tests/test_linear.py::test_checkpointed_and_long_truncated_equal_unrolled_exactly",
    "tests/test_interpolate.py::test_batch_axes_each_image_its_own_solve",
    "tests/test_gem_estimators.py::test_gem_path_edges_never_increase_with_gamma",
    "tests/test_reconstruction.py::test_gradients_wrt_lambda_ryx_rxx[altmin-checkpointed]",
    "tests/test_networks.py::test_ugtv_unrolled_gradient_matches_finite_differences",
    "tests/test_contract.py::test_vmap_batches_problems_and_info[gem_e_step-unrolled]",
    "tests/test_reconstruction.py::test_gradients_wrt_lambda_ryx_rxx[altmin-truncated]",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-checkpointed-f64]",
    "tests/test_contract.py::test_forward_mode_equals_reverse_mode[altmin-unrolled]",
    "glrjax/glr.py::glrjax.glr.glr_filter",
    "tests/test_l2g_vae.py::test_vae_output_is_nonnegative",
    "tests/test_reconstruction.py::test_identity_correlation_is_the_group_soft_threshold",
    "tests/test_contract.py::test_check_grads_unrolled_family[altmin-unrolled]",
    "tests/test_contract.py::test_check_grads_implicit[gem_e_step]",
    "tests/test_contract.py::test_jit_grad_dtype_and_info[gem_e_step-unrolled-f32]",
    "tests/test_spectral.py::test_labels_agree_with_scikit_learn_spectral_clustering",
    "tests/test_glr.py::test_jacobi_and_callable_preconditioners",
    "tests/test_glr.py::test_implicit_gradient_memory_does_not_grow_with_maxiter",
    "tests/test_networks.py::test_uglr_gradients_match_finite_differences[Truncated]",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in LONG:
            item.add_marker(pytest.mark.slow)
