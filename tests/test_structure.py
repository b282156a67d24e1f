"""The package's structure: no import circle between its modules, model files
loaded through the estimators' own registration, and a clear error from an
estimator that leaves out a hook the base classes call."""
import ast
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import ClassifierMixin

import fastbp
from fastbp import MLPClassifier
from fastbp._base import BackpropEstimator
from fastbp._targets import ClassifierTargetsMixin
from fastbp.mlp import _BaseMLP

PACKAGE = Path(fastbp.__file__).parent


def _is_type_checking(test):
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imported_modules(nodes, package_modules):
    """Modules of the package that ``nodes`` import when the module is
    executed: imports inside functions, classes' methods and ``if
    TYPE_CHECKING:`` blocks do not run then and do not count."""
    found = set()
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            found |= _imported_modules(node.orelse, package_modules)
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {n.split(".")[0] for n in names} & package_modules
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fastbp" and len(parts) > 1 and parts[1] in package_modules:
                    found.add(parts[1])
        found |= _imported_modules(ast.iter_child_nodes(node), package_modules)
    return found


def import_graph(package=PACKAGE):
    """{module: modules of the package it imports at module level}."""
    paths = {p.stem: p for p in package.glob("*.py")}
    return {name: _imported_modules(ast.parse(path.read_text()).body, set(paths)) - {name}
            for name, path in paths.items()}


def import_cycles(graph):
    """Every elementary cycle of ``graph``, each as a list that starts at its
    smallest module name."""
    cycles = []

    def walk(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cycles.append(path + [start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def test_no_module_level_import_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles in fastbp: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_sees_a_cycle_and_skips_deferred_imports(tmp_path):
    # the finder itself must be able to fail, and must skip what does not
    # run at import time
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("from .c import x\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nfrom .a import y\n")
    assert import_cycles(import_graph(tmp_path)) == [["a", "b", "c", "a"]]
    (tmp_path / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
        "def f():\n    from .a import y\n")
    assert import_cycles(import_graph(tmp_path)) == []


def test_model_files_do_not_import_estimator_modules():
    # the loader reads the registry; estimator modules import the base class,
    # which saves through the loader's module
    source = ast.parse((PACKAGE / "_persist.py").read_text())
    imported = {n.module for n in ast.walk(source) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(source) if isinstance(n, ast.ImportFrom)
                 and n.module is None for a in n.names}
    assert not imported & {"mlp", "lenet", "rnn"}


def test_registry_refuses_a_second_class_of_one_name(monkeypatch):
    from fastbp import _registry

    monkeypatch.setattr(_registry, "_LOADABLE", {})
    first = _registry.loadable(type("Model", (), {"__module__": "one"}))
    again = _registry.loadable(type("Model", (), {"__module__": "one"}))  # a reload
    assert _registry.loadable_classes() == {"Model": again} and again is not first
    with pytest.raises(ValueError, match="two loadable estimator classes are named Model"):
        _registry.loadable(type("Model", (), {"__module__": "two"}))
    assert _registry.loadable_classes() == {"Model": again}


def test_every_estimator_is_registered_for_loading():
    from fastbp._registry import loadable_classes

    assert loadable_classes() == {cls.__name__: cls for cls in (
        fastbp.MLPClassifier, fastbp.MLPRegressor, fastbp.LeNet5Classifier,
        fastbp.RNNClassifier, fastbp.RNNRegressor)}


REQUIRED_HOOKS = ["_architecture_params", "_validate_X_y", "_check_X", "_build_network",
                  "_init_parameters", "_out_activation", "_loss_kind", "_prepare_fit",
                  "_validation_targets", "_prepare_backprop", "_validation_score",
                  "_stratify_validation"]


def _copy_without(cls, hook):
    """A class with cls's own methods, but ``hook``; not those that call
    super() (bound to cls) nor dunders: the bases' defaults serve."""
    return type(cls.__name__, (), {k: v for k, v in vars(cls).items()
                                   if k != hook and k != "_sample_weights"
                                   and not k.startswith("__")})


def _estimator_without(hook):
    """An MLP classifier put together from scratch, as a new estimator would
    be, from the classifier mixin's and the MLP's hooks, all but ``hook``."""
    return type("Incomplete", (_copy_without(ClassifierTargetsMixin, hook), ClassifierMixin,
                               _copy_without(_BaseMLP, hook), BackpropEstimator),
                {"__init__": MLPClassifier.__init__, "_losses": MLPClassifier._losses})


def test_hooks_documented_in_base_are_the_required_ones():
    for name in REQUIRED_HOOKS:
        assert f"``{name}" in BackpropEstimator.__doc__


@pytest.mark.parametrize("hook", REQUIRED_HOOKS)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_missing_hook_fails_clearly(hook):
    X = np.random.default_rng(0).standard_normal((40, 3))
    y = np.arange(40) % 2
    est = _estimator_without(hook)(hidden_layer_sizes=(4,), max_iter=2)
    with pytest.raises(NotImplementedError, match=f"Incomplete does not define {hook}"):
        # every hook is called by one of these
        est.set_params(early_stopping=True).fit(X, y)
        est.set_params(early_stopping=False).fit(X, y, X_val=X, y_val=y)
        est.predict(X)
        est.backprop(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_complete_hooks_make_an_estimator():
    # the test's estimator, with every hook, fits as MLPClassifier does
    X = np.random.default_rng(0).standard_normal((40, 3))
    y = np.arange(40) % 2
    est = _estimator_without(None)
    params = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    fitted = est(**params).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X),
                                  MLPClassifier(**params).fit(X, y).predict_proba(X))
