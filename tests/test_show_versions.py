"""fastbp.show_versions: what a bug report needs, and the BLAS kernel hint."""
import fastbp
from fastbp import _show_versions


def test_show_versions_prints_versions_openmp_and_blas(capsys):
    fastbp.show_versions()
    out = capsys.readouterr().out
    for key in ("fastbp:", "python:", "numpy:", "scipy:", "scikit-learn:", "openmp:",
                "threads:", "blas:"):
        assert key in out, key
    assert fastbp.__version__ in out


def _openblas(architecture):
    return {"user_api": "blas", "internal_api": "openblas", "architecture": architecture}


def test_kernel_hint_only_for_an_avx512_cpu_on_older_kernels(monkeypatch):
    monkeypatch.setattr(_show_versions, "_cpu_has_avx512", lambda: True)
    both = [_openblas("Haswell"), _openblas("SkylakeX")]
    hint = _show_versions.openblas_kernel_hint(both, environ={})
    assert "OPENBLAS_CORETYPE=SkylakeX" in hint and "Haswell kernels" in hint
    forced = _show_versions.openblas_kernel_hint(both, environ={"OPENBLAS_CORETYPE": "Haswell"})
    assert "as OPENBLAS_CORETYPE=Haswell in the environment" in " ".join(forced.split())
    assert "without it" in forced
    assert _show_versions.openblas_kernel_hint([_openblas("SkylakeX")]) is None
    assert _show_versions.openblas_kernel_hint([{"internal_api": "mkl"}]) is None
    monkeypatch.setattr(_show_versions, "_cpu_has_avx512", lambda: False)
    assert _show_versions.openblas_kernel_hint([_openblas("Haswell")]) is None
