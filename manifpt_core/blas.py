"""numpy's and scipy's BLAS thread pool, limited to one thread around small iterative fits.

A leaf module: it imports nothing of the project, so the metrics and the baselines can use it.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context in which numpy's and scipy's BLAS (OpenBLAS) run on one thread, restored after.

    For scikit-learn's iterative fits on a few hundred to a few thousand rows (L-BFGS logistic regressions,
    k-means), every matrix product is small, and waking the BLAS threads for each costs more than the product:
    one leave-one-model-out fit of the report (700 rows, 256 dimensions, 6 classes) took 1.75 s on two BLAS
    threads and 0.09 s on one, on a 2-core machine, with the same iterates. Larger dense algebra (the
    eigendecompositions of the Fréchet distances) gains from the threads and is left out of it. torch's and
    FAISS's own thread pools are not affected."""
    return threadpool_limits(limits=1, user_api="blas")
