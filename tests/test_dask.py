"""Scale-out: model selection through joblib's dask backend on a dask cluster,
and fastbp's threads following the limits of the worker they run in.

The cluster tests are skipped unless the extra is installed
(``pip install fastbp[dask]``).
"""
import warnings

import numpy as np
import pytest

from fastbp import MLPClassifier
from fastbp._kernels import _openmp, _team
from fastbp._threads import _usable_cpu_count, effective_n_threads

threads_only = pytest.mark.skipif(not _team.threads_available(),
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
    # OMP_NUM_THREADS=1, which fastbp honours.
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


@threads_only
def test_in_process_workers_share_the_cores(distributed):
    # Workers in the client's process get no OMP_NUM_THREADS from dask; the
    # cores are shared among every task thread of the process instead.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        n, _ = client.submit(_threads_in_task, pure=False).result()
    assert n == max(1, min(effective_n_threads(None), _usable_cpu_count() // 2))
    assert effective_n_threads(None) >= n  # outside tasks: unchanged


@threads_only
@pytest.mark.skipif(_openmp.openmp_enabled(), reason="the OpenMP runtime read it at its start")
@pytest.mark.parametrize("value, expected", [("1", 1), ("1,4", 1), ("0", None), ("two", None)])
def test_omp_num_threads_caps_the_default_thread_count(monkeypatch, value, expected):
    """As scikit-learn's OpenMP code does (dask's nannies set it to 1); an
    invalid value is ignored."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    every_core = effective_n_threads(None)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert effective_n_threads(None) == (every_core if expected is None else expected)
