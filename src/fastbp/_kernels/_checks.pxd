# Shape checks at the kernels' Python entry points. The kernels run with
# boundscheck off, so a wrong shape would read or write out of bounds; these
# cost a few comparisons per call and turn that into a ValueError.


cdef inline int check_shape(object name, const Py_ssize_t* shape, int ndim,
                            tuple expected) except -1:
    """Raise ValueError unless shape[:ndim] == expected (None matches any size)."""
    cdef int d
    for d in range(ndim):
        if expected[d] is not None and shape[d] != <Py_ssize_t> expected[d]:
            got = []
            want = []
            for d in range(ndim):
                got.append(str(shape[d]))
                want.append("any" if expected[d] is None else str(expected[d]))
            raise ValueError(f"{name} has shape ({', '.join(got)}), expected "
                             f"({', '.join(want)})")
    return 0

