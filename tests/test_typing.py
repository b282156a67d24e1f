"""The public API carries type hints (PEP 561): they resolve at run time, the
compiled kernels' stubs match the modules, and mypy accepts the package and a
typed user program while still catching a wrong use."""
import ast
import inspect
import typing
from importlib import resources
from pathlib import Path

import pytest

import fastbp
from fastbp import _kernels, datasets, plot

PUBLIC_FUNCTIONS = [fastbp.load, fastbp.check_gradients, fastbp.show_versions,
                    datasets.load_idx, datasets.load_fashion_mnist]
ESTIMATORS = [fastbp.MLPClassifier, fastbp.MLPRegressor, fastbp.LeNet5Classifier,
              fastbp.RNNClassifier, fastbp.RNNRegressor]
METHODS = ["fit", "predict", "transform", "save", "backprop"]


@pytest.mark.parametrize("func", PUBLIC_FUNCTIONS, ids=lambda f: f.__qualname__)
def test_functions_are_annotated(func):
    hints = typing.get_type_hints(func)
    assert "return" in hints


@pytest.mark.parametrize("func", [plot.loss_curve, plot.filters], ids=lambda f: f.__name__)
def test_plot_functions_are_annotated(func):
    # matplotlib's types are named only for type checkers (matplotlib is optional)
    assert {"est", "return"} <= set(func.__annotations__)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_estimator_methods_are_annotated(est, method):
    hints = typing.get_type_hints(getattr(est, method))
    assert "return" in hints and "X" in hints or method == "save"


def test_package_is_typed_and_versioned():
    assert resources.files("fastbp").joinpath("py.typed").is_file()
    from fastbp._version import __version__

    assert fastbp.__version__ == __version__


KERNEL_MODULES = ["_blas", "_calls", "_chain", "_chain_engine", "_conv", "_dense", "_dispatch",
                  "_losses", "_openmp", "_optimizers", "_rnn", "_sparse"]


def _stub_contents(module):
    """{name: ast.FunctionDef or None (a variable or class)} declared in a module's .pyi."""
    stub = resources.files("fastbp._kernels").joinpath(f"{module}.pyi").read_text()
    declared = {}
    for node in ast.parse(stub).body:
        if isinstance(node, ast.FunctionDef):
            declared[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = None
        elif isinstance(node, ast.ClassDef):
            declared[node.name] = None
    return declared


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_kernel_stub_matches_compiled_module(module):
    compiled = getattr(_kernels, module)
    declared = _stub_contents(module)
    assert set(declared) == {k for k in vars(compiled) if not k.startswith("__")}
    for name, node in declared.items():
        if node is None:
            continue
        params = list(inspect.signature(getattr(compiled, name)).parameters.values())
        stub_args = node.args.args + node.args.kwonlyargs
        assert [a.arg for a in stub_args] == [p.name for p in params], name
        assert [a.arg for a in node.args.kwonlyargs] == [
            p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY], name
        n_defaults = sum(p.default is not inspect.Parameter.empty for p in params)
        stub_defaults = len(node.args.defaults) + sum(
            d is not None for d in node.args.kw_defaults)
        assert stub_defaults == n_defaults, name


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    """mypy on arguments, with one cache for the module; (exit status, report)."""
    mypy_api = pytest.importorskip("mypy.api")
    cache = tmp_path_factory.mktemp("mypy_cache")

    def run(*args):
        stdout, stderr, status = mypy_api.run(
            # the flag, not pyproject.toml: the wheel's test run has no source tree
            ["--cache-dir", str(cache), "--no-error-summary", "--ignore-missing-imports",
             *map(str, args)])
        return status, stdout + stderr
    return run


def test_mypy_accepts_the_installed_package(mypy_run):
    # -p finds fastbp where Python imports it from: the wheel, stubs included
    status, report = mypy_run("-p", "fastbp")
    assert status == 0, report


def test_mypy_accepts_typed_use(mypy_run):
    status, report = mypy_run(Path(__file__).parent / "typed_usage.py")
    assert status == 0, report


def test_mypy_catches_a_wrong_use(mypy_run, tmp_path):
    wrong = tmp_path / "wrong_use.py"
    wrong.write_text(
        "import numpy as np\nimport fastbp\n"
        "clf = fastbp.MLPClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1])\n"
        "name: str = clf.backprop(np.zeros((4, 2)), [0, 1, 0, 1]).loss\n")
    status, report = mypy_run(wrong)
    assert status == 1 and "wrong_use.py:4: error: Incompatible types" in report, report
