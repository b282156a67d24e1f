"""The stochastic solvers' optimizers (momentum SGD and Adam): their state,
the step they take, and that state as plain arrays and scalars for a model
file. The epoch loop that drives them is ``_solvers.fit_stochastic``."""
import numpy as np

from ._kernels import _optimizers as _updates
from ._memory import aligned_copy, aligned_zeros, starts_a_line


class Optimizer:
    """A stochastic optimizer: its state, and the step it takes.

    One protocol serves both ways a network trains: :meth:`update_args`
    describes the update rule (its kernel code, state arrays and
    coefficients) and :meth:`next_learning_rate` gives the size of the next
    step. A network that applies the step inside its own kernel
    (``DenseNetwork.run_epoch``) asks for both; :meth:`step` applies them to
    a gradient the caller holds, with the same kernel, so the two ways give
    the same bits. :meth:`state` and :meth:`from_state` give and take the state as
    plain arrays and scalars (what a model file stores).

    Hyperparameters are taken from a :class:`SolverSettings` at every fit
    call (:meth:`follow`), so set_params between partial_fit calls takes
    effect (sklearn keeps those of the first call).
    """

    kind: str = ""  # the solver name, a key of OPTIMIZERS
    _state_arrays: tuple[str, ...] = ()  # names of the state arrays, each of theta's shape

    def __init__(self, n_params, dtype, settings):
        raise NotImplementedError

    def follow(self, settings):
        """Take the hyperparameters of ``settings`` for the coming steps (and
        set ``_update``, what :meth:`update_args` returns)."""
        raise NotImplementedError

    def _restore_scalars(self, state, settings):
        """Take the scalars of ``state`` (for :meth:`from_state`); ValueError
        when one is missing or malformed."""
        raise NotImplementedError

    def __setstate__(self, state):
        # An unpickled state array goes back on a cache line (_memory.py);
        # follow() then points _update at the new one. (A shallow copy,
        # whose arrays are the original's, shares them as before.)
        self.__dict__.update(state)
        moved = False
        for name in self._state_arrays:
            a = getattr(self, name)
            if not starts_a_line(a):
                setattr(self, name, aligned_copy(a))
                moved = True
        if moved and "settings" in state:
            self.follow(self.settings)

    def update_args(self):
        """The update rule, as keyword arguments of ``_chain.dense_chain_train``."""
        return self._update

    def next_learning_rate(self):
        """The step size of the next batch (a step is counted)."""
        raise NotImplementedError

    def step(self, theta, grad, n_threads):
        """Update ``theta`` in place by one step along ``grad``."""
        apply_update(theta, grad, self.next_learning_rate(), n_threads, **self.update_args())

    def iteration_ends(self, time_step):
        """Called after each epoch with the number of samples seen (``t_``)."""

    def trigger_stopping(self, msg):
        """Whether to stop when the stopping criterion is met; returns
        (stop, message to print when verbose)."""
        return True, msg + " Stopping."

    def state(self):
        """The state, as a dict of plain arrays (each of theta's shape) and
        scalars: what :meth:`from_state` takes back."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state, settings, n_params, dtype):
        """An optimizer that continues from ``state`` (of :meth:`state`).

        Parameters
        ----------
        state : dict
            Plain arrays and scalars, as :meth:`state` gives them.
        settings : SolverSettings
            The hyperparameters to continue with.
        n_params : int
            Size of the parameter vector the state belongs to.
        dtype : numpy dtype
            The parameters' dtype.

        Returns
        -------
        optimizer : Optimizer

        Raises
        ------
        ValueError
            When an array or scalar of the state is missing or malformed.
        """
        optimizer = cls.__new__(cls)
        for name in cls._state_arrays:
            a = state.get(name)
            if (not isinstance(a, np.ndarray) or a.shape != (n_params,)
                    or a.dtype != np.dtype(dtype) or not np.all(np.isfinite(a))):
                raise ValueError(f"malformed optimizer array {name}")
            setattr(optimizer, name, aligned_copy(a))  # its own, writable copy
        optimizer._restore_scalars(state, settings)
        optimizer.follow(settings)
        return optimizer


def _positive(state, name):
    """state[name] as a float; ValueError unless it is a finite, positive
    (non-bool) number."""
    value = state.get(name)
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not 0 < value < float("inf")):
        raise ValueError(f"malformed optimizer {name.replace('_', ' ')}")
    return float(value)


def apply_update(theta, grad, learning_rate, n_threads, update, state_1, state_2=None,
                 beta_1=0.0, beta_2=0.0, epsilon=0.0, nesterov=False):
    """Apply one step of the rule ``update`` (a code of ``_updates.UPDATE_CODES``,
    with the arguments of :meth:`Optimizer.update_args`) to ``theta``."""
    if update == _updates.UPDATE_CODES["sgd"]:
        _updates.sgd_update(theta, grad, state_1, learning_rate, beta_1, nesterov, n_threads)
    else:
        _updates.adam_update(theta, grad, state_1, state_2, learning_rate, beta_1, beta_2,
                           epsilon, n_threads)


class SGDState(Optimizer):
    """Momentum SGD: the velocity and the current learning rate, which the
    'invscaling' and 'adaptive' schedules change; a new learning_rate_init
    restarts the schedule from it."""

    kind = "sgd"
    _state_arrays = ("velocity",)

    def __init__(self, n_params, dtype, settings):
        self.velocity = aligned_zeros(n_params, dtype)
        self.learning_rate = self.learning_rate_init = float(settings.learning_rate_init)
        self.follow(settings)

    def _restore_scalars(self, state, settings):
        self.learning_rate = _positive(state, "learning_rate")  # perhaps decayed from
        self.learning_rate_init = float(settings.learning_rate_init)  # the one it started at

    def follow(self, settings):
        if settings.learning_rate_init != self.learning_rate_init:
            self.learning_rate = self.learning_rate_init = float(settings.learning_rate_init)
        self.settings = settings
        self._update = dict(update=_updates.UPDATE_CODES["sgd"], state_1=self.velocity,
                            beta_1=settings.momentum, nesterov=settings.nesterovs_momentum)

    def next_learning_rate(self):
        return self.learning_rate

    def iteration_ends(self, time_step):
        s = self.settings
        if s.learning_rate == "invscaling":
            self.learning_rate = s.learning_rate_init / (time_step + 1) ** s.power_t

    def trigger_stopping(self, msg):
        """With the 'adaptive' schedule, divide the rate by 5 instead of
        stopping, until it is at most 1e-6."""
        if self.settings.learning_rate != "adaptive":
            return True, msg + " Stopping."
        if self.learning_rate <= 1e-6:
            return True, msg + " Learning rate too small. Stopping."
        self.learning_rate /= 5.0
        return False, msg + " Setting learning rate to %f" % self.learning_rate

    def state(self):
        return {"learning_rate": self.learning_rate, "velocity": self.velocity}


class AdamState(Optimizer):
    """Adam: both moments and the step count."""

    kind = "adam"
    _state_arrays = ("m1", "m2")

    def __init__(self, n_params, dtype, settings):
        self.m1 = aligned_zeros(n_params, dtype)
        self.m2 = aligned_zeros(n_params, dtype)
        self.t = 0
        self.learning_rate = float(settings.learning_rate_init)
        self.follow(settings)

    def _restore_scalars(self, state, settings):
        t = state.get("t")
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or not 0 <= t < 2**53:
            raise ValueError("malformed Adam step count")
        if np.any(self.m2 < 0):
            raise ValueError("malformed optimizer array m2")
        self.t = int(t)
        self.learning_rate = _positive(state, "learning_rate")

    def follow(self, settings):
        self.settings = settings
        self._update = dict(update=_updates.UPDATE_CODES["adam"], state_1=self.m1,
                            state_2=self.m2, beta_1=settings.beta_1, beta_2=settings.beta_2,
                            epsilon=settings.epsilon)

    def next_learning_rate(self):
        """The bias-corrected step size of the next step, which it counts."""
        s = self.settings
        self.t += 1
        self.learning_rate = (s.learning_rate_init * np.sqrt(1 - s.beta_2 ** self.t)
                              / (1 - s.beta_1 ** self.t))
        return self.learning_rate

    def state(self):
        return {"learning_rate": self.learning_rate, "t": self.t, "m1": self.m1, "m2": self.m2}


# The optimizer of each stochastic solver, by name (what a model file records).
OPTIMIZERS = {cls.kind: cls for cls in (SGDState, AdamState)}
STOCHASTIC_SOLVERS = tuple(OPTIMIZERS)
