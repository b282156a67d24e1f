"""fastbp.show_versions: what a bug report needs, and the BLAS kernel hint."""
import re

import threadpoolctl

import fastbp
from fastbp import __main__ as demo
from fastbp import _show_versions
from fastbp._kernels import _dispatch


def test_show_versions_prints_versions_threads_and_blas(capsys):
    fastbp.show_versions()
    out = capsys.readouterr().out
    for key in ("fastbp:", "python:", "numpy:", "scipy:", "scikit-learn:", "thread team:",
                "threads:", "kernels:", "blas:"):
        assert key in out, key
    assert fastbp.__version__ in out


def _openblas(architecture):
    return {"user_api": "blas", "internal_api": "openblas", "architecture": architecture}


def test_kernel_hint_only_for_an_avx512_cpu_on_older_kernels(monkeypatch):
    monkeypatch.setattr(_show_versions, "_cpu_has_avx512", lambda: True)
    both = [_openblas("Haswell"), _openblas("SkylakeX")]
    hint = _show_versions.openblas_kernel_hint(both, environ={})
    assert "OPENBLAS_CORETYPE=SkylakeX" in hint and "Haswell kernels" in hint
    own = _dispatch.dispatch_path() != "portable"
    assert ("fastbp multiplies with its own kernels" in " ".join(hint.split())) == own
    _dispatch._force_dispatch_path("portable")  # fastbp's products then go through BLAS
    try:
        assert "fastbp multiplies" not in _show_versions.openblas_kernel_hint(both, environ={})
    finally:
        _dispatch._force_dispatch_path(None)
    forced = _show_versions.openblas_kernel_hint(both, environ={"OPENBLAS_CORETYPE": "Haswell"})
    assert "as OPENBLAS_CORETYPE=Haswell in the environment" in " ".join(forced.split())
    assert "without it" in forced
    assert _show_versions.openblas_kernel_hint([_openblas("SkylakeX")]) is None
    assert _show_versions.openblas_kernel_hint([{"internal_api": "mkl"}]) is None
    monkeypatch.setattr(_show_versions, "_cpu_has_avx512", lambda: False)
    assert _show_versions.openblas_kernel_hint([_openblas("Haswell")]) is None


# Figures measured on some other machine: a CPU model, a throughput, a ratio
# ("1.9x", "2x faster"). The demo's names hold sizes ("8x8", "32x32"), no ratio.
MEASURED_ELSEWHERE = re.compile(
    r"\bZen\b|FLOP/s|\d(\.\d+)?\s?x\b|\b(faster|slower) than|speed-?up", re.IGNORECASE)


def _older_kernels_on_avx512(monkeypatch):
    """Make the kernel hint appear: an AVX-512 CPU whose OpenBLAS runs Haswell
    kernels."""
    infos = [dict(_openblas("Haswell"), version="0.3.30", num_threads=2,
                  filepath="/lib/libopenblas.so")]
    monkeypatch.setattr(_show_versions, "_cpu_has_avx512", lambda: True)
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: infos)
    monkeypatch.setattr(demo, "threadpool_info", lambda: infos)


def test_show_versions_states_no_figures_measured_elsewhere(monkeypatch, capsys):
    _older_kernels_on_avx512(monkeypatch)
    fastbp.show_versions()
    out = capsys.readouterr().out
    assert "Haswell kernels" in out  # the hint is there, and holds no foreign figures
    assert not MEASURED_ELSEWHERE.search(out), MEASURED_ELSEWHERE.search(out)


def test_demo_states_no_figures_measured_elsewhere(monkeypatch, capsys):
    """The demo prints what it measures here (accuracy, seconds) and the hint."""
    monkeypatch.setattr(demo, "demo_rows", lambda: iter([
        ("fastbp.MLPClassifier (4,) adam, 32x32",
         fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0), "flat")]))
    _older_kernels_on_avx512(monkeypatch)
    demo.main()
    out = capsys.readouterr().out
    assert "fastbp.MLPClassifier (4,) adam, 32x32" in out and "Haswell kernels" in out
    assert not MEASURED_ELSEWHERE.search(out), MEASURED_ELSEWHERE.search(out)
