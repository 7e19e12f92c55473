"""numpy's and scipy's BLAS on one thread inside ``one_blas_thread``, and as before after it."""

import numpy as np
from threadpoolctl import threadpool_limits

from manifpt_core.blas import one_blas_thread


def test_blas_runs_on_one_thread_inside_and_as_before_after(blas_threads):
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        with one_blas_thread():
            assert blas_threads() == {1}
            a = np.arange(12.0).reshape(3, 4)
            assert np.array_equal(a @ a.T, np.einsum("ij,kj->ik", a, a))
        assert blas_threads() == {2}
