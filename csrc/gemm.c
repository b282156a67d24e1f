/* fastbp's own GEMM, for the shapes its layers multiply; see gemm.h.
 *
 * Why not BLAS alone: a layer's products are small or thin (64 rows of a
 * mini-batch against a 784 x 256 weight matrix, 1,600 steps of an RNN against
 * 65 classes), and at those shapes OpenBLAS spends a quarter of its time
 * packing both operands at every call. Here only B is packed, a block of
 * KC rows by one panel (2 vectors) of columns at a time into a 16 KiB buffer
 * on the stack that stays in L1 (for a product of several blocks of MC rows,
 * all of B once, into the heap), and A is read in place: each tile of MR
 * rows broadcasts A's elements straight from its rows (or columns, for A^T:
 * where eight panels or more pass over them, each block of A^T is first
 * copied transposed into the heap, since its columns lie lda apart).
 * Long products go MC rows at a time, so that those rows of A stay in L2
 * while every panel of B passes over them. A few columns past the last
 * whole panel (65 classes: one) run with vectors along C's rows instead:
 * with A^T (a weight gradient), which has them contiguous, and with A
 * itself in float32 on AVX-512, its blocks transposed in registers.
 *
 * Each element of C is one chain of multiply-adds along k, in order: the
 * accumulator starts at 0 (or at C when accumulating), and a block of k after
 * the first starts from the C that the block before stored. A float stored
 * and loaded again is the same float, so an element's bits depend on its row
 * of op(A), its column of op(B) and k alone: not on m, n, the tiles, the
 * blocks of k, or how callers cut a product into blocks for their threads.
 * The AVX2 and AVX-512 copies therefore give the same bits.
 *
 * Copies exist for AVX2+FMA and AVX-512 (fb_dispatch.h); at the portable
 * level the caller uses BLAS.
 */
#include "gemm.h"

#include <stdint.h>
#include <stdlib.h>

#include "fb_alloc.h"
#include "fb_dispatch.h"

/* Bytes of the packed panel on the stack: half an L1 of 32 KiB or more, and
 * little stack for threads started with a small one. Its rows of k (KC) are
 * 128 with AVX-512 and 256 with AVX2. */
#define FASTBP_GEMM_PANEL_BYTES 16384
/* Rows of A a block: a multiple of every tile's rows (6, 12) and of every
 * vector's lanes (the edge's chunks of rows); 192 rows of a 784-wide A take
 * 600 KB of L2 in float32, 1.2 MB in float64. */
#define FASTBP_GEMM_MC 192
/* Most bytes of op(B) packed up front for several blocks of rows (a
 * 1024 x 1024 float32 B); a larger B is packed block by block. Each thread
 * of a team may hold one such copy while it multiplies, beside a copy of a
 * block of A^T (MC x KC elements, at most 384 KB). */
#define FASTBP_GEMM_PACKED_BYTES (4 << 20)

#if FB_X86_COPIES
#include <immintrin.h>

/* Rows of B fetched ahead of the packing: a hint, which may point past the
 * end (the address is formed as an integer, so no pointer leaves B). */
#define FASTBP_GEMM_AHEAD 8
#define FASTBP_PREFETCH(p, bytes) __builtin_prefetch((const void*)((uintptr_t)(p) + (bytes)), 0, 3)
/* Unroll a tile's loop over its rows completely, so that its accumulators
 * stay in registers: past GCC's default limit of 16, and with clang, which
 * ignores "GCC unroll n" for loops of fewer than n trips. */
#if defined(__clang__)
#define FASTBP_UNROLL_ALL _Pragma("unroll")
#else
#define FASTBP_UNROLL_ALL _Pragma("GCC unroll 32")
#endif

#define FB_ALIGN64 __attribute__((aligned(64)))

#define FB_TEMPLATE "gemm_kernels.h"
#include "fb_lanes_x86.h"
#undef FB_TEMPLATE
#endif

#define FASTBP_GEMM_ENTRY(FT, SUF)                                                               \
    int fastbp_gemm_##SUF(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,      \
                          const FT* A, ptrdiff_t lda, const FT* B, ptrdiff_t ldb,               \
                          int accumulate, FT* C, ptrdiff_t ldc)                                 \
    {                                                                                           \
        const int level = fb_level();                                                           \
        FASTBP_GEMM_UNUSED                                                                      \
        if (k < 1 || level == FB_LEVEL_PORTABLE)                                                \
            return 1;                                                                           \
        if (m < 1 || n < 1)                                                                     \
            return 0;                                                                           \
        FASTBP_GEMM_COPIES(SUF)                                                                 \
        return 1;                                                                               \
    }

#if FB_X86_COPIES
#define FASTBP_GEMM_COPIES(SUF)                                                                 \
    if (level == FB_LEVEL_AVX512)                                                               \
        gemm_##SUF##_avx512(trans_a, trans_b, m, n, k, A, lda, B, ldb, accumulate, C, ldc);     \
    else                                                                                        \
        gemm_##SUF##_avx2(trans_a, trans_b, m, n, k, A, lda, B, ldb, accumulate, C, ldc);       \
    return 0;
#define FASTBP_GEMM_UNUSED
#else
#define FASTBP_GEMM_COPIES(SUF)
/* no copies: every argument but k goes unused */
#define FASTBP_GEMM_UNUSED                                                                      \
    (void)trans_a, (void)trans_b, (void)A, (void)lda, (void)B, (void)ldb, (void)accumulate,    \
        (void)C, (void)ldc;
#endif

FASTBP_GEMM_ENTRY(float, f32)
FASTBP_GEMM_ENTRY(double, f64)

#if FB_X86_COPIES
/* the copy of `level` (AVX-512 or AVX2) of a template function */
#define FASTBP_COPY(level, fn, SUF) ((level) == FB_LEVEL_AVX512 ? fn##_##SUF##_avx512 : fn##_##SUF##_avx2)
#define FASTBP_PACK_BODY(FT, SUF)                                                                \
    const int lv = fb_level();                                                                  \
    size_t size;                                                                                \
    FT* packed;                                                                                 \
    if (lv == FB_LEVEL_PORTABLE || n < 1 || k < 1)                                              \
        return NULL;                                                                            \
    size = FASTBP_COPY(lv, gemm_packed_bytes, SUF)(n, k);                                       \
    if (size > FASTBP_GEMM_PACKED_BYTES || (packed = (FT*)fb_alloc_lines(size, held)) == NULL)  \
        return NULL;                                                                            \
    FASTBP_COPY(lv, gemm_pack_all, SUF)(trans_b, B, ldb, k, 0, n, packed);                      \
    *level = lv;                                                                                \
    return packed;
#define FASTBP_PACKED_BODY(SUF)                                                                  \
    if (m >= 1 && n >= 1)                                                                       \
        FASTBP_COPY(level, gemm_packed, SUF)(m, n, k, A, lda, packed, accumulate, C, ldc);
#else
#define FASTBP_PACK_BODY(FT, SUF) (void)trans_b, (void)n, (void)k, (void)B, (void)ldb, (void)level;
#define FASTBP_PACKED_BODY(SUF)                                                                  \
    (void)level, (void)m, (void)n, (void)k, (void)A, (void)lda, (void)packed, (void)accumulate, \
        (void)C, (void)ldc;
#endif

#define FASTBP_PACK_ENTRY(FT, SUF)                                                               \
    FT* fastbp_gemm_pack_##SUF(int trans_b, ptrdiff_t n, ptrdiff_t k, const FT* B,              \
                               ptrdiff_t ldb, int* level, void** held)                          \
    {                                                                                           \
        *held = NULL;                                                                           \
        FASTBP_PACK_BODY(FT, SUF)                                                               \
        return NULL;                                                                            \
    }                                                                                           \
    void fastbp_gemm_packed_##SUF(int level, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,             \
                                  const FT* A, ptrdiff_t lda, const FT* packed, int accumulate, \
                                  FT* C, ptrdiff_t ldc)                                         \
    {                                                                                           \
        FASTBP_PACKED_BODY(SUF)                                                                 \
    }

FASTBP_PACK_ENTRY(float, f32)
FASTBP_PACK_ENTRY(double, f64)

void fastbp_gemm_pack_free(void* held) { free(held); }
