# A kernel call bound to its arrays (_calls.pyx): the kernel modules
# subclass BoundCall, one subclass per kernel, whose execute runs the call
# from the pointers and sizes its bind function checked.

cdef class BoundCall:
    cdef object arrays  # what the pointers point into, kept alive
    cdef bint bound  # set by the bind function once the call is checked

    cdef int execute(self) noexcept nogil
    cdef BoundCall keep(self, tuple arrays)


cdef inline int raise_for(int status) except -1:
    """MemoryError for a kernel's status -1 (out of memory)."""
    if status != 0:
        raise MemoryError()
    return 0
