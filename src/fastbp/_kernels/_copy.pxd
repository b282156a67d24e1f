# Copies of rows between arrays that may lie at any offset from each other.
from libc.string cimport memcpy

# glibc copies a few KiB and more with `rep movsb`, which on AMD's Zen 3 ran
# 13 times slower when the destination lay a few bytes past the source
# modulo 4 KiB: a 4 KiB row (a 32x32 float32 image) of a batch buffer
# against a row of the training set has the same offset at every row of a
# fit, so a whole fit's gathers took 47 us a batch of 32 instead of 4.
# Shorter copies take its vector loop at any offset.
cdef enum:
    COPY_PIECE = 1024


cdef inline void copy_bytes(void* dst, const void* src, Py_ssize_t n) noexcept nogil:
    """memcpy(dst, src, n) in pieces of at most COPY_PIECE bytes."""
    cdef Py_ssize_t k = 0
    while k < n:
        memcpy(<char*> dst + k, <const char*> src + k, min(<Py_ssize_t> COPY_PIECE, n - k))
        k += COPY_PIECE
