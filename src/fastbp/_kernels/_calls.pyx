"""Kernel calls bound to their arrays once, then run many times.

A training batch runs the same kernel calls on the same workspace arrays,
batch after batch. A kernel's Python entry point acquires a buffer for each
array and checks every shape on each call: 1.3-3.2 us a call, 27 us for
LeNet-5's fourteen passes, which do not shrink on more threads. Each kernel
module therefore also has a ``bind_*`` function that validates a call once
and returns a :class:`BoundCall` holding its pointers, its sizes and the
arrays themselves (kept alive, so the pointers stay valid); calling it, or
:func:`run_calls` on a list of them, runs the kernel with no further check.
The entry points are their own bind function then the call, so both ways
run the same code to the same bits.
"""


cdef class BoundCall:
    """A kernel call bound to its arrays: calling it runs the kernel (a
    subclass per kernel; this base runs nothing)."""

    cdef int execute(self) noexcept nogil:
        """Run the call; 0, or -1 when the kernel ran out of memory."""
        return 0

    def __call__(self):
        cdef int status
        with nogil:
            status = self.execute()
        if status != 0:
            raise MemoryError()


def run_calls(calls):
    """Run each call of ``calls`` in order: a :class:`BoundCall` without a
    Python call, any other callable by calling it."""
    cdef BoundCall bound
    cdef int status
    for call in calls:
        if isinstance(call, BoundCall):
            bound = <BoundCall> call
            with nogil:
                status = bound.execute()
            if status != 0:
                raise MemoryError()
        else:
            call()
