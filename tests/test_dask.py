"""Scale-out: model selection through joblib's dask backend on a dask cluster,
and fastbp's threads following the limits of the worker they run in.

The cluster tests are skipped unless the extra is installed
(``pip install fastbp[dask]``).
"""
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastbp import MLPClassifier
from fastbp._kernels import _openmp
from fastbp._threads import _usable_cpu_count, effective_n_threads

openmp_only = pytest.mark.skipif(not _openmp.openmp_enabled(),
                                 reason="serial kernels always use one thread")


def _threads_in_task():
    import os

    from fastbp._threads import effective_n_threads

    return effective_n_threads(None), os.environ.get("OMP_NUM_THREADS")


def _search(X, y, backend):
    from joblib import parallel_config
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    grid = {"hidden_layer_sizes": [(2,), (16,)], "alpha": [1e-4, 10.0]}
    search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0), grid, cv=3,
                          n_jobs=1 if backend is None else 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if backend is None:
            search.fit(X, y)
        else:
            with parallel_config(backend=backend):
                search.fit(X, y)
    return search


@pytest.fixture(scope="module")
def distributed():
    pytest.importorskip("joblib", minversion="1.3")
    return pytest.importorskip("distributed")


def test_grid_search_on_a_local_cluster_matches_the_local_run(distributed):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:360] / 16.0, y[:360]
    local = _search(X, y, None)
    # Worker processes, as on a real cluster: the nanny gives each one dask's
    # OMP_NUM_THREADS=1, which omp_get_max_threads honours.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = _search(X, y, "dask")
        in_tasks = client.gather([client.submit(_threads_in_task, pure=False, key=f"t{i}")
                                  for i in range(2)])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], atol=0.02)
    assert [n for n, _ in in_tasks] == [1, 1], in_tasks


@openmp_only
def test_in_process_workers_share_the_cores(distributed):
    # Workers in the client's process get no OMP_NUM_THREADS from dask; the
    # cores are shared among every task thread of the process instead.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        n, _ = client.submit(_threads_in_task, pure=False).result()
    assert n == max(1, min(effective_n_threads(None), _usable_cpu_count() // 2))
    assert effective_n_threads(None) >= n  # outside tasks: unchanged


@openmp_only
def test_threadpoolctl_openmp_limit_is_honoured():
    with threadpool_limits(limits=1, user_api="openmp"):
        assert effective_n_threads(None) == 1
