# The one instruction-set level of fastbp's C kernels (csrc/fb_dispatch.h):
# _dispatch.pyx owns it; every kernel module binds its C code to it when
# imported, with bind_dispatch().

cdef extern from "fb_dispatch.h" nogil:
    void fastbp_dispatch_bind(const int* level)

cdef const int* level_address() noexcept nogil


cdef inline void bind_dispatch() noexcept:
    """Make this module's C kernels read the level owned by _dispatch."""
    fastbp_dispatch_bind(level_address())
