"""The engine's seams: a network owns how an epoch runs (the solver calls its
``run_epoch``, and the dense chain is one implementation of it), the network
pairs each layer with the activation below it, and the engine's data
(parameter specs, workspaces, layer constructors) describes itself."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastbp import LeNet5Classifier, MLPClassifier
from fastbp._batches import batch_source
from fastbp._dense_network import ChunkPlan, DenseNetwork
from fastbp._layers import Conv5x5, Dense, LayerWorkspace, MeanPool2x2, ParamSpec
from fastbp._network import EpochPlan, Network, Workspace
from fastbp._sequences import RNNCell, RNNNetwork, RNNWorkspace
from fastbp._solvers import SolverSettings, TrainingRecord, fit_stochastic


def _dense(n_in, n_out, activation, i):
    return Dense(n_in, n_out, activation=activation, weight_name=f"w{i}", bias_name=f"b{i}")


def _data(n=50, n_features=4, n_outputs=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    Y = np.eye(n_outputs, dtype=dtype)[rng.integers(0, n_outputs, n)]
    return X, Y


def _fit_stochastic(net, X, Y, **settings):
    settings = SolverSettings(**{"max_iter": 3, "batch_size": 16, "n_iter_no_change": 100,
                                 **settings})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_stochastic(net, X, Y, None, None, TrainingRecord(losses=[]), settings,
                              np.random.RandomState(0), 1)


# ------------------------------------------------------------ one engine
class _CountingNetwork(Network):
    """A network whose epochs change nothing and report a loss of 0.5."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epochs = []

    def run_epoch(self, plan, order, optimizer, progress=None):
        self.epochs.append((plan, np.array(order)))
        return 0.5 * len(order)


def test_the_solver_runs_each_epoch_through_the_networks_run_epoch():
    X, Y = _data()
    net = _CountingNetwork([_dense(4, 3, "identity", 0)], "softmax_ce", np.float64)
    net.theta[:] = 1.0
    record = _fit_stochastic(net, X, Y, max_iter=4)
    assert len(net.epochs) == 4 == record.n_iter
    assert record.losses == [0.5] * 4  # what run_epoch returned, per sample
    assert np.all(net.theta == 1.0)
    for plan, order in net.epochs:
        assert plan is net.epochs[0][0]  # planned once per fit
        assert plan.batch_size == 16
        assert sorted(order) == list(range(len(X)))  # every sample, in this epoch's order


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("case", ["dense", "fortran Y", "fortran X", "sparse X", "clip"])
def test_the_dense_chain_runs_where_it_applies_and_gives_the_loops_bits(case, solver):
    X, Y = _data()
    settings = {"solver": solver, "alpha": 1e-3}
    if case == "fortran Y":
        Y = np.asfortranarray(Y)
    elif case == "fortran X":
        X = np.asfortranarray(X)
    elif case == "sparse X":
        X = sp.csr_matrix(X)
    elif case == "clip":
        settings["clip_grad_norm"] = 1e6  # never reached: the same steps

    def fitted(cls):
        layers = [_dense(4, 5, "tanh", 0), _dense(5, 3, "identity", 1)]
        net = cls(layers, "softmax_ce", np.float64)
        net.theta[:] = np.random.default_rng(1).uniform(-0.5, 0.5, net.theta.size)
        return net, _fit_stochastic(net, X, Y, **settings)

    chain = DenseNetwork([_dense(4, 3, "identity", 0)], "softmax_ce", np.float64)
    plan = chain.plan_epochs(batch_source(X, Y), 16, SolverSettings(**settings), 1)
    assert isinstance(plan, ChunkPlan) == (case == "dense")
    # against the per-batch loop of a plain Network of the same layers, to the bit
    (chained, chained_record), (looped, looped_record) = fitted(DenseNetwork), fitted(Network)
    assert chained_record.losses == looped_record.losses
    np.testing.assert_array_equal(chained.theta, looped.theta)


def test_a_dense_network_takes_dense_layers_only():
    conv = Conv5x5(1, 2, in_size=(6, 6), table=np.ones((2, 1), bool), activation="tanh",
                   name="C")
    with pytest.raises(ValueError, match="Dense layers only"):
        DenseNetwork([conv, _dense(8, 2, "identity", 0)], "softmax_ce", np.float64)


# ------------------------------------------------------ input activations
def test_the_network_pairs_each_layer_with_the_activation_below():
    layers = [_dense(4, 5, "tanh", 0), _dense(5, 6, "relu", 1), _dense(6, 3, "identity", 2)]
    net = Network(layers, "softmax_ce", np.float64)
    assert [layer.input_activation for layer in net.layers] == ["identity", "tanh", "relu"]
    # and backward applies it: the gradient of the middle layer's input
    # matches central differences only with tanh' there
    X, Y = _data(n=6)
    ws = net.workspace(6)
    theta = net.theta
    # weights away from zero: at zero every gradient of w0 vanishes, with or
    # without tanh', and the check could not fail
    theta[:] = np.random.default_rng(1).uniform(-0.5, 0.5, theta.size)
    net.loss_and_grad(X, Y, None, 0.0, ws, 1)
    grad = net.grad.copy()
    eps = 1e-6
    for i in range(4 * 5):  # every entry of w0, whose gradient passes through tanh'
        theta[i] += eps
        up = net.loss_and_grad(X, Y, None, 0.0, ws, 1)
        theta[i] -= 2 * eps
        down = net.loss_and_grad(X, Y, None, 0.0, ws, 1)
        theta[i] += eps
        assert grad[i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)
    assert np.abs(grad[:20]).max() > 1e-3


@pytest.mark.parametrize("est, shape, network", [
    (MLPClassifier(hidden_layer_sizes=(5, 4), activation="logistic"), (20, 6), DenseNetwork),
    (LeNet5Classifier(image_shape=(32, 32)), (20, 1024), Network),
])
def test_estimators_build_networks_that_pair_every_layer(est, shape, network):
    X = np.random.default_rng(0).random(shape)
    y = np.arange(shape[0]) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=1).fit(X, y)
    assert type(est._network) is network  # MLPs: the dense chain runs their epochs
    layers = est._network.layers
    assert layers[0].input_activation == "identity"
    for below, layer in zip(layers, layers[1:]):
        assert layer.input_activation == below.activation != "identity"


def test_the_rnn_output_layer_takes_no_derivative_bptt_applies_it():
    net = RNNNetwork(3, 4, 2, nonlinearity="tanh", loss="softmax_ce", last_step=True,
                     bptt_steps=0, dtype=np.float64)
    assert net.layers[0].activation == "tanh"
    assert net.layers[1].input_activation == "identity"


# ------------------------------------------------------------ bound passes
def _maps_network():
    """C(1->2, 8x8 -> 4x4), S(2x2), F(8 -> 3), float64: maps side by side
    from 8 samples on."""
    rng = np.random.default_rng(1)
    net = Network([
        Conv5x5(1, 2, in_size=(8, 8), table=np.ones((2, 1), bool), activation="tanh",
                name="C"),
        MeanPool2x2(2, in_size=(4, 4), activation="tanh", name="S"),
        _dense(8, 3, "identity", 0),
    ], "softmax_ce", np.float64)
    net.theta[:] = rng.standard_normal(net.theta.size)
    return net


def _grads(net, X, Y, ws, n_threads=2):
    loss = net.loss_and_grad(X, Y, None, 0.0, ws, n_threads)
    return loss, net.grad.copy()


def _assert_as_on_a_new_workspace(net, X, Y, ws, n_threads=2):
    """loss_and_grad on ws gives the bits of a first call on a new workspace."""
    expected = _grads(net, X, Y, net.workspace(len(X)), n_threads)
    loss, grad = _grads(net, X, Y, ws, n_threads)
    assert loss == expected[0]
    np.testing.assert_array_equal(grad, expected[1])


@pytest.mark.parametrize("n", [16, 5])  # maps side by side, and NCHW
def test_training_passes_are_bound_once_per_input_buffer_and_read_it_when_they_run(n):
    net = _maps_network()
    rng = np.random.default_rng(2)
    X1, X2 = (rng.standard_normal((n, 1, 8, 8)) for _ in range(2))
    Y = np.eye(3)[rng.integers(0, 3, n)]
    ws = net.workspace(n)
    _grads(net, X1, Y, ws)
    passes = ws.passes
    # another input array: bound anew, not run on X1
    _assert_as_on_a_new_workspace(net, X2, Y, ws)
    assert ws.passes is not passes
    # the same array with new contents (a batch loop's gather): the passes
    # are reused and read the new contents
    passes = ws.passes
    X2[...] = X1
    _assert_as_on_a_new_workspace(net, X2, Y, ws)
    assert ws.passes is passes
    # parameters changed in place (a step, L-BFGS): read when the passes run
    net.theta *= 0.5
    _assert_as_on_a_new_workspace(net, X2, Y, ws)
    assert ws.passes is passes
    # another thread count binds anew (the bits are the same)
    _assert_as_on_a_new_workspace(net, X2, Y, ws, n_threads=1)
    assert ws.passes is not passes
    # a network whose layers are bound anew (to another grad) binds its own
    passes = ws.passes
    net.grad = np.zeros_like(net.grad)
    net._bind()
    _assert_as_on_a_new_workspace(net, X2, Y, ws, n_threads=1)
    assert ws.passes is not passes
    # another network on the same workspace binds its own views
    other = _maps_network()
    other.theta *= 0.25
    _assert_as_on_a_new_workspace(other, X2, Y, ws, n_threads=1)


def test_passes_on_an_input_that_is_not_c_contiguous_are_not_kept():
    # a dense layer binds a reshaped copy of such an input: kept passes
    # would read the copy, not the input's new contents
    rng = np.random.default_rng(4)
    net = Network([_dense(6, 4, "tanh", 0), _dense(4, 3, "identity", 1)], "softmax_ce",
                  np.float64)
    net.theta[:] = rng.standard_normal(net.theta.size)
    X = np.asfortranarray(rng.standard_normal((8, 3, 2)))
    Y = np.eye(3)[rng.integers(0, 3, 8)]
    ws = net.workspace(8)
    _grads(net, X, Y, ws)
    assert ws.passes is None
    X[...] = rng.standard_normal(X.shape)
    _assert_as_on_a_new_workspace(net, X, Y, ws)


# ------------------------------------------------------- self-describing data
def test_param_specs_name_their_fields():
    layer = _dense(3, 2, "relu", 0)
    assert layer.param_specs == (ParamSpec("w0", (3, 2), True), ParamSpec("b0", (2,), False))
    assert [s.regularized for s in layer.param_specs] == [True, False]
    net = Network([layer, _dense(2, 2, "identity", 1)], "squared", np.float64)
    assert net.n_regularized == 3 * 2 + 2 * 2
    assert list(net.parameters()) == ["w0", "b0", "w1", "b1"]


def test_workspaces_have_named_fields_only():
    net = Network([_dense(4, 5, "tanh", 0), _dense(5, 3, "identity", 1)], "softmax_ce",
                  np.float64)
    ws = net.workspace(7)
    assert isinstance(ws, Workspace) and ws.delta_out.shape == (7, 3)
    assert all(isinstance(layer_ws, LayerWorkspace) for layer_ws in ws.layers)
    assert ws.layers[0].delta_in is None and ws.layers[1].delta_in.shape == (7, 5)
    assert ws.layers[1].out.shape == (7, 3)
    assert net.workspace(7, backward=False).delta_out is None
    with pytest.raises(AttributeError):
        ws.rows = 7  # slots: no entry beside the named ones
    rnn = RNNNetwork(3, 4, 2, nonlinearity="tanh", loss="softmax_ce", last_step=False,
                     bptt_steps=0, dtype=np.float32)
    train, predict = rnn.workspace(9), rnn.workspace(9, backward=False)
    assert isinstance(train, RNNWorkspace)
    assert train.dH.shape == (9, 4) and train.data is None
    assert predict.data.shape == (9, 3) and predict.dH is None and predict.delta_out is None


def test_epoch_plans_are_planned_once_with_named_fields():
    X, Y = _data()
    net = Network([_dense(4, 3, "identity", 0)], "softmax_ce", np.float64)
    plan = net.plan_epochs(batch_source(X, Y), 8, SolverSettings(shuffle=False, alpha=0.5), 1)
    assert type(plan) is EpochPlan
    assert (plan.batch_size, plan.gather, plan.alpha) == (8, False, 0.5)
    assert plan.buffers[0].shape == (8, 4)


def test_a_fit_lends_its_workspace_to_the_networks_next_fit_of_as_many_rows():
    X, Y = _data()
    net = Network([_dense(4, 3, "identity", 0)], "softmax_ce", np.float64)
    settings = SolverSettings(shuffle=False, alpha=0.5)
    first = net.plan_epochs(batch_source(X, Y), 8, settings, 1)
    net.end_epochs(first)
    again = net.plan_epochs(batch_source(X, Y), 8, settings, 1)
    assert again.ws is first.ws and again.ws_rows == 8
    # lent to one fit at a time: a second fit meanwhile gets its own
    assert net.plan_epochs(batch_source(X, Y), 8, settings, 1).ws is not first.ws
    net.end_epochs(again)
    other = net.plan_epochs(batch_source(X, Y), 4, settings, 1)  # other rows: a new one
    assert other.ws is not first.ws and other.ws_rows == 4
    assert Network([_dense(4, 3, "identity", 0)], "softmax_ce", np.float64).plan_epochs(
        batch_source(X, Y), 8, settings, 1).ws is not first.ws  # per network


@pytest.mark.parametrize("make_est, shape", [
    (lambda: LeNet5Classifier(batch_size=8, n_jobs=2, random_state=0), (16, 32, 32)),
    (lambda: MLPClassifier(hidden_layer_sizes=(12,), batch_size=8, shuffle=True,
                           random_state=0), (16, 20)),
])
def test_partial_fits_reusing_a_workspace_give_the_bits_of_fresh_ones(make_est, shape,
                                                                      monkeypatch):
    import fastbp._network

    rng = np.random.default_rng(0)
    batches = [(rng.random(shape, dtype=np.float32), rng.integers(0, 3, shape[0]))
               for _ in range(4)]
    weights = []
    for fresh in (False, True):
        if fresh:  # what every partial_fit did before workspaces were kept
            monkeypatch.setattr(fastbp._network, "keep_training_workspace",
                                lambda net, rows, ws: None)
        est = make_est()
        kept = []
        for X, y in batches:
            est.partial_fit(X, y, classes=[0, 1, 2])
            kept.append(fastbp._network._TRAINING_WORKSPACES.get(est._network))
        weights.append(est._network.theta.copy())
        if fresh:
            assert kept == [None] * len(batches)
        else:  # the first call's workspace served every call
            assert all(entry[1] is kept[0][1] for entry in kept)
    assert weights[0].tobytes() == weights[1].tobytes()


@pytest.mark.parametrize("make", [
    lambda: Dense(3, 2, "relu", "w", "b"),
    lambda: Conv5x5(1, 2, (6, 6), np.ones((2, 1), bool), "tanh", "C"),
    lambda: MeanPool2x2(2, (4, 4), "tanh", "S"),
    lambda: RNNCell(3, 4, "tanh"),
    lambda: Dense(3, 2, activation="relu", input_activation="tanh", weight_name="w",
                  bias_name="b"),
])
def test_layer_constructors_take_keywords(make):
    with pytest.raises(TypeError):
        make()
