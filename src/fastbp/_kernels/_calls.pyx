"""Kernel calls bound to their arrays once, then run many times.

A training batch runs the same kernel calls on the same workspace arrays,
batch after batch. A kernel's Python entry point acquires a buffer for each
array and checks every shape on each call: 1.3-3.2 us a call, 27 us for
LeNet-5's fourteen passes, which do not shrink on more threads. Each layer
kernel therefore also has a ``bind_*`` function, with the entry point's
arguments, that checks a call once and returns a :class:`BoundCall` holding
its pointers, its sizes and the arrays themselves (kept alive, so the
pointers stay valid); calling it, or :func:`run_calls` on a list of them,
runs the kernel on the arrays' contents at that time, with no further
check. The entry point and its bind function share the function that
checks the call and the one that runs it, so both give the same bits.

The arrays must keep their memory while bound: ``ndarray.resize`` with
``refcheck=False`` on one of them would leave the call pointing at freed
memory (the bound calls are internal to fastbp, made on its own workspace
and parameter arrays).
"""


cdef class BoundCall:
    """A kernel call bound to its arrays: calling it runs the kernel.

    Made by a kernel's ``bind_*`` function (a subclass per kernel); one made
    any other way refuses to run.
    """

    cdef int execute(self) noexcept nogil:
        """Run the call; 0, or -1 when the kernel ran out of memory."""
        return 0

    cdef BoundCall keep(self, tuple arrays):
        """Mark the call checked (its bind function filled it) and keep
        ``arrays``, what its pointers point into, alive; return it."""
        self.arrays = arrays
        self.bound = True
        return self

    def __call__(self):
        """Run the kernel on the arrays' current contents.

        Raises
        ------
        ValueError
            When the call was not made by a bind function.
        MemoryError
            When the kernel could not allocate its scratch memory.
        """
        cdef int status
        if not self.bound:
            raise ValueError("a BoundCall is made by a kernel's bind_* function")
        with nogil:
            status = self.execute()
        raise_for(status)


def run_calls(calls):
    """Run each call of ``calls`` in order.

    Parameters
    ----------
    calls : iterable of callables
        :class:`BoundCall` objects, run without a Python call each, or any
        other callables taking no argument, called.

    Raises
    ------
    ValueError
        For a BoundCall not made by a bind function (nothing after it runs).
    MemoryError
        When a kernel could not allocate its scratch memory.
    """
    cdef BoundCall bound
    cdef int status
    for call in calls:
        if isinstance(call, BoundCall):
            bound = <BoundCall> call
            if not bound.bound:
                raise ValueError("a BoundCall is made by a kernel's bind_* function")
            with nogil:
                status = bound.execute()
            raise_for(status)
        else:
            call()
