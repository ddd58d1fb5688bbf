"""scikit-learn's estimator checks.

The checks feed generic regression data: ``X`` of shape ``(n, d)`` and a
target ``y`` of another width (``(n,)``, reshaped to ``(n, 1)`` for
multi-output-only estimators, or ``(n, 5)``). ReTuneRegularizer fits
measurement/signal pairs, whose shapes are tied by the forward operator
(``X_i = A y_i``): with the default identity operator, ``X`` and ``y`` must
have the same sample shape. So the checks run twice:

* on ReTuneRegularizer itself, where every check that fits such unrelated
  pairs is an expected failure (the data contract, not a defect);
* on ``_MatrixWhenShapesDiffer``, the same estimator whose default operator
  becomes a fixed random matrix from ``y``'s width to ``X``'s when they
  differ, so that the fitting checks exercise validation, fit, transform,
  pickling, dtypes and invariances on that data.

``Tikhonov()`` (order 0) is the regularizer: it acts on signals of any
length, unlike wavelets, whose levels need sizes divisible by ``2**levels``.
"""

import copy

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.operators import MatrixOperator
from retune_sklearn.regularizers import Tikhonov

# device="cpu": bitwise reproducible, as several checks expect (CUDA is not; see the tags).
PARAMS = dict(regularizer=Tikhonov(), K=2, T=2, max_epochs=2, random_state=0, n_threads=1,
              device="cpu")


class _MatrixWhenShapesDiffer(ReTuneRegularizer):
    """ReTuneRegularizer whose default operator is ``A`` (random, ``m × d``)
    when the samples of ``X`` (``m`` entries) and ``y`` (``d``) differ."""

    def _build_problem(self, y_shape, X_shape):
        if self.operator is not None or tuple(X_shape) == tuple(y_shape):
            return super()._build_problem(y_shape, X_shape)
        m, d = int(np.prod(X_shape)), int(np.prod(y_shape))
        A = np.random.default_rng(0).standard_normal((m, d)) / np.sqrt(m)
        with_matrix = copy.copy(self)  # leaves the `operator` parameter alone
        with_matrix.operator = MatrixOperator(A)
        return ReTuneRegularizer._build_problem(with_matrix, y_shape, X_shape)


ONE_D_Y = ("y is (n,): one signal per sample needs an axis (use y[:, None]); the check "
           "ignores the multi-output-only tag")
UNRELATED_SHAPES = "X and y of unrelated shapes: the identity operator needs X.shape == y.shape"

TRANSFORMER_CHECKS_WITH_1D_Y = ["check_transformer_data_not_an_array",
                                "check_transformer_general",
                                "check_transformer_preserve_dtypes"]
CHECKS_FITTING_UNRELATED_SHAPES = [
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object",
    "check_estimators_dtypes", "check_estimators_fit_returns_self", "check_estimators_nan_inf",
    "check_estimators_overwrite_params", "check_estimators_partial_fit_n_features",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
    "check_regressor_data_not_an_array", "check_regressor_multioutput", "check_regressors_int",
    "check_regressors_no_decision_function", "check_regressors_train",
]


def expected_failed_checks(estimator):
    failures = dict.fromkeys(TRANSFORMER_CHECKS_WITH_1D_Y, ONE_D_Y)
    if not isinstance(estimator, _MatrixWhenShapesDiffer):
        failures.update(dict.fromkeys(CHECKS_FITTING_UNRELATED_SHAPES, UNRELATED_SHAPES))
    return failures


@parametrize_with_checks([ReTuneRegularizer(**PARAMS), _MatrixWhenShapesDiffer(**PARAMS)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
