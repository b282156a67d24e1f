# Heap blocks on a 64-byte cache line (csrc/fb_alloc.h): what a block of
# partial results written by several threads side by side is allocated with.
cdef extern from "fb_alloc.h" nogil:
    void* fb_alloc_lines(size_t bytes, void** held)
