"""bench/_harness.py's driver, its child processes replaced by canned results."""
import json
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[1] / "bench"
if not (_BENCH / "_harness.py").is_file():
    pytest.skip("needs the source tree's bench/ (the tests run from a copy)",
                allow_module_level=True)
sys.path.insert(0, str(_BENCH))
import _harness  # noqa: E402


def _run_main(monkeypatch, tmp_path, one_core, n_cpus=2, argv=(), all_cores=None,
              contenders=("fastbp",), timed=None):
    """main() on a machine of n_cpus whose GEMM runs at 100 GFLOP/s per
    thread beyond the first (``one_core`` answers the one-core run,
    ``all_cores``, when given, the all-core one)."""
    peaks_run = []

    def fake_run(script, workload, contender, n_threads, options, timeout):
        if workload == "peak":
            peaks_run.append(n_threads)
            if n_threads == n_cpus and all_cores is not None:
                return all_cores
            return one_core if n_threads == 1 else {"seconds": 1.0,
                                                    "gflops": 100.0 * n_threads,
                                                    "blas": ["fake"]}
        if timed is not None:
            return timed(contender, n_threads)
        return {"seconds": 0.5 / n_threads}

    monkeypatch.setattr(_harness, "run_in_process", fake_run)
    monkeypatch.setattr(_harness, "usable_cpus", lambda: list(range(n_cpus)))
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "argv", ["bench_fake.py", "--json", str(out), *argv])
    workload = _harness.Workload("fake", "s/epoch", 1e9, "float32",
                                 {c: None for c in contenders})
    _harness.main([workload], "fake", str(out))
    return json.loads(out.read_text()), peaks_run


def test_the_one_core_gemm_is_reported(monkeypatch, tmp_path, capsys):
    report, _ = _run_main(monkeypatch, tmp_path, {"seconds": 2.0, "gflops": 50.0, "blas": []})
    peak = report["workloads"][0]["peak"]
    assert (peak["one_core_gflops"], peak["top_threads"], peak["top_gflops"]) == (50.0, 2, 200.0)
    out = capsys.readouterr().out
    assert "speeds up 4.00x from 1 to 2 threads" in out
    assert "1->all against the same GEMM's 4.00 from 1 to 2 threads" in out


def test_the_bound_stops_where_the_thread_counts_stop(monkeypatch, tmp_path, capsys):
    """--threads short of all cores: the table's 1->all runs to 2 threads, so
    the GEMM's bound is timed at 2 threads too, not at the 4-core peak."""
    report, peaks_run = _run_main(monkeypatch, tmp_path,
                                  {"seconds": 2.0, "gflops": 50.0, "blas": []},
                                  n_cpus=4, argv=["--threads", "1", "2"])
    assert sorted(peaks_run) == [1, 2, 4]
    peak = report["workloads"][0]["peak"]
    assert (peak["gflops"], peak["top_threads"], peak["top_gflops"]) == (400.0, 2, 200.0)
    assert "speeds up 4.00x from 1 to 2 threads" in capsys.readouterr().out


@pytest.mark.parametrize("failure", [{"error": "exit 1: killed"},
                                     {"error": "timed out after 1800 s"}])
def test_a_failed_one_core_gemm_leaves_the_tables(monkeypatch, tmp_path, capsys, failure):
    report, _ = _run_main(monkeypatch, tmp_path, failure)
    assert "one_core_gflops" not in report["workloads"][0]["peak"]
    out = capsys.readouterr().out
    assert failure["error"] in out
    assert "## fake" in out


def test_a_failed_all_core_gemm_leaves_the_tables_without_a_fraction_of_peak(
        monkeypatch, tmp_path, capsys):
    report, _ = _run_main(monkeypatch, tmp_path, {"seconds": 2.0, "gflops": 50.0, "blas": []},
                          all_cores={"error": "exit 1: killed"})
    out = capsys.readouterr().out
    assert "no % of peak in the tables" in out and "exit 1: killed" in out
    row = report["workloads"][0]["summary"][0]
    assert row["contender"] == "fastbp" and row["of_peak"] is None
    assert row["best"] == 0.25 and row["speedup"] == 2.0
    table = out[out.index("## fake"):]
    assert "fastbp" in table and "no % of peak: the GEMM peak failed" in table


def test_rounds_alternate_the_contenders_and_keep_each_ones_fastest(
        monkeypatch, tmp_path, capsys):
    calls = []
    times = {("a", 1): [3.0, 1.0, 2.0], ("a", 2): [0.5, 0.9, 0.7],
             ("b", 1): [4.0, 5.0, 6.0], ("b", 2): [{"error": "killed"}, 2.0, 1.5]}

    def timed(contender, n_threads):
        calls.append((contender, n_threads))
        t = times[contender, n_threads].pop(0)
        return t if isinstance(t, dict) else {"seconds": t}

    report, _ = _run_main(monkeypatch, tmp_path, {"seconds": 2.0, "gflops": 50.0, "blas": []},
                          argv=["--rounds", "3"], contenders=("a", "b"), timed=timed)
    assert calls == [("a", 1), ("a", 2), ("b", 1), ("b", 2)] * 3
    results = report["workloads"][0]["results"]
    assert results["a"]["1"]["seconds"] == 1.0 and results["a"]["2"]["seconds"] == 0.5
    assert results["b"]["1"]["seconds"] == 4.0 and results["b"]["2"]["seconds"] == 1.5
    assert results["b"]["2"]["rounds"] == [None, 2.0, 1.5]
    assert results["b"]["2"]["failed_rounds"] == ["killed"]
    assert report["environment"]["rounds"] == 3
    out = capsys.readouterr().out
    assert "the fastest of 3 rounds" in out
    # a row with fewer runs behind it says so
    assert "b, 2 thread(s): 1 of 3 rounds failed (killed)" in out
    assert "a, 1 thread(s):" not in out.split("## fake")[1]


def test_one_round_by_default(monkeypatch, tmp_path, capsys):
    report, _ = _run_main(monkeypatch, tmp_path, {"seconds": 2.0, "gflops": 50.0, "blas": []})
    assert report["workloads"][0]["results"]["fastbp"]["1"]["rounds"] == [0.5]
    assert "rounds" not in capsys.readouterr().out.split("## fake")[1]


def test_the_mlp_bound_multiplies_the_flop_the_table_counts(monkeypatch):
    # bench_mlp's "gemms-only" row is a bound only if it does the products
    # the workload's FLOP counts: every batch's, the short last one included
    import numpy as np

    import bench_mlp

    flop = []
    matmul = np.matmul

    def counting_matmul(a, b, out):
        flop.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return matmul(a, b, out=out)

    monkeypatch.setattr(bench_mlp.np, "matmul", counting_matmul)
    n = 300  # two batches of 128 and one of 44
    result = bench_mlp.run_gemms_only({"n_train": n, "epochs": 2, "dtype": "float32"}, 1)
    assert result["seconds"] > 0
    # a warm-up epoch (all 300 rows: fewer than the warm-up's) and two timed
    assert sum(flop) == 3 * bench_mlp.flop_per_sample() * n
