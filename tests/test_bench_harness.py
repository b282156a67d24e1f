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


def _run_main(monkeypatch, tmp_path, one_core):
    def fake_run(script, workload, contender, n_threads, options, timeout):
        if workload == "peak":
            return one_core if n_threads == 1 else {"seconds": 1.0, "gflops": 100.0,
                                                    "blas": ["fake"]}
        return {"seconds": 0.5 / n_threads}

    monkeypatch.setattr(_harness, "run_in_process", fake_run)
    monkeypatch.setattr(_harness, "usable_cpus", lambda: [0, 1])
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "argv", ["bench_fake.py", "--json", str(out)])
    workload = _harness.Workload("fake", "s/epoch", 1e9, "float32", {"fastbp": None})
    _harness.main([workload], "fake", str(out))
    return json.loads(out.read_text())


def test_the_one_core_gemm_is_reported(monkeypatch, tmp_path, capsys):
    report = _run_main(monkeypatch, tmp_path, {"seconds": 2.0, "gflops": 50.0, "blas": []})
    assert report["workloads"][0]["peak"]["one_core_gflops"] == 50.0
    assert "speeds up 2.00x from 1 to 2 cores" in capsys.readouterr().out


@pytest.mark.parametrize("failure", [{"error": "exit 1: killed"},
                                     {"error": "timed out after 1800 s"}])
def test_a_failed_one_core_gemm_leaves_the_tables(monkeypatch, tmp_path, capsys, failure):
    report = _run_main(monkeypatch, tmp_path, failure)
    assert "one_core_gflops" not in report["workloads"][0]["peak"]
    out = capsys.readouterr().out
    assert failure["error"] in out
    assert "## fake" in out
