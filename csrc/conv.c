/* Direct 5x5 convolution and trainable 2x2 mean-pool kernels; see conv.h.
 *
 * Wide rows
 * ---------
 * A 5x5 correlation of an (h, w) plane is computed on the flattened plane:
 * out[p] = sum_{kh,kw} k[kh][kw] * in[p + kh*w + kw] for p = y*w + x. Every
 * tap is then one contiguous run of loads, so the loop over p vectorises
 * with plain unaligned loads; the columns x >= w - 4 of the "wide" output are
 * wasted and dropped when the result is written. A tile of up to 8 vectors
 * of p is held in registers while all taps of all connected input maps are
 * accumulated into it (see chunk_core).
 *
 * The loops are bound by loads more than by multiply-adds (32-byte loads at
 * 4-byte offsets often straddle cache lines), so output maps are computed in
 * pairs that share input maps (fastbp_plan_tiles): each input load then feeds
 * two FMAs, in tiles of 2 x 6 vectors. Unshared input maps of a pair (LeCun's
 * C3 table) are handled in the same tile, one FMA per load. Likewise the
 * weight gradient runs over two output maps of one input map at a time.
 *
 * The backward pass uses the same layout: dZ of each output map is copied
 * into a zero-padded buffer with row stride w (4 zero rows above and below,
 * the data in columns 4..w-1 of each row). Read from offset 4*w + 4 it is the
 * wide dZ with zeros in the wasted columns (for the weight gradient); read
 * from offset 0 it is dZ padded by 4 on every side, because the left padding
 * of one row doubles as the right padding of the row above (for dX, a full
 * convolution = correlation of the padded dZ with the rotated kernel). Tiles
 * of dX next to the top or bottom edge skip the kernel rows that would read
 * only zero rows.
 *
 * Instruction sets
 * ----------------
 * This file includes itself: pass 1 instantiates the kernels for one
 * (dtype, instruction set) pair, pass 2 the dispatchers and OpenMP loops for
 * one dtype. The portable kernels use GCC/Clang vector extensions (16-byte
 * vectors) or, elsewhere, plain scalars (1 lane); where fb_dispatch.h
 * compiles copies for x86-64 an AVX2/FMA copy is compiled with a target
 * attribute and chosen at run time (fb_level). No -march flag is needed.
 *
 * Determinism
 * -----------
 * Forward passes write disjoint outputs per sample. Gradients of the weights,
 * biases and pooling coefficients are summed per block of BLOCK samples (in a
 * fixed order, by whichever thread runs the block) and the block sums are
 * added in block order, so results are bitwise identical for any n_threads.
 * At most WAVE block sums are held at a time, which bounds memory.
 */
#ifndef FASTBP_CONV_PASS

#include "fastbp_fp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastbp_omp.h"
#include "fastbp_sync.h"
#include "fb_dispatch.h"
#include "elementwise.h"
#include "conv.h"

#if FB_X86_COPIES
#include <immintrin.h>
#endif

/* FASTBP_CONV_SCALAR forces the 1-lane portable kernels (to test them). */
#if defined(__GNUC__) && !defined(FASTBP_CONV_SCALAR)
#define FASTBP_VEC_EXT 1
#else
#define FASTBP_VEC_EXT 0
#endif

#if defined(_MSC_VER)
#define FASTBP_INLINE static __forceinline
#elif defined(__GNUC__)
#define FASTBP_INLINE static inline __attribute__((always_inline))
#else
#define FASTBP_INLINE static inline
#endif

#define FASTBP_RMAX 8    /* vectors of a register tile (forward, dX) */
#define FASTBP_BLOCK 8   /* samples per gradient block */
#define FASTBP_WAVE 16   /* block sums held in memory at once */
#define FASTBP_XPAD 32   /* zero elements after the padded copy of a sample */
#define FASTBP_ALIGN_PAD 8 /* room to shift a buffer to vector alignment (elements) */

/* The first 64-byte boundary at or after p (p from malloc with 64 bytes spare). */
static void* fastbp_align64(void* p)
{
    return p == NULL ? NULL : (void*)(((size_t)p + 63) & ~(size_t)63);
}

/* ---- tiles: output maps are computed in pairs that share input maps ---- */

/* Output map o (and o + 1 when G == 2) of a tile. pool[s .. s+ns) are the
 * input maps of both outputs, pool[a .. a+na) those of output o only,
 * pool[b .. b+nb) those of output o + 1 only. */
typedef struct {
    int o, G, ns, na, nb, s, a, b;
} fastbp_tile_group;

/* Pair consecutive output maps that share at least one input map; returns the
 * number of groups. conn(o, i) = table[o, i], or table[i, o] when transposed
 * (outputs are then the input maps of the layer, for dX). groups: room for
 * one entry per output map; pool: room for (outputs x inputs) ints. */
static int fastbp_plan_tiles(const unsigned char* table, int c_out, int c_in, int transposed,
                             fastbp_tile_group* groups, int* pool)
{
    const int no = transposed ? c_in : c_out, ni = transposed ? c_out : c_in;
    int o = 0, i, ng = 0, np = 0, shared;
#define FASTBP_CONN(oo, ii) \
    (transposed ? table[(ptrdiff_t)(ii) * c_in + (oo)] : table[(ptrdiff_t)(oo) * c_in + (ii)])
    while (o < no) {
        fastbp_tile_group* g = groups + ng++;
        shared = 0;
        if (o + 1 < no)
            for (i = 0; i < ni && !shared; i++) shared = FASTBP_CONN(o, i) && FASTBP_CONN(o + 1, i);
        g->o = o;
        g->G = shared ? 2 : 1;
        g->s = np;
        if (shared)
            for (i = 0; i < ni; i++)
                if (FASTBP_CONN(o, i) && FASTBP_CONN(o + 1, i)) pool[np++] = i;
        g->ns = np - g->s;
        g->a = np;
        for (i = 0; i < ni; i++)
            if (FASTBP_CONN(o, i) && !(shared && FASTBP_CONN(o + 1, i))) pool[np++] = i;
        g->na = np - g->a;
        g->b = np;
        if (shared)
            for (i = 0; i < ni; i++)
                if (FASTBP_CONN(o + 1, i) && !FASTBP_CONN(o, i)) pool[np++] = i;
        g->nb = np - g->b;
        o += g->G;
    }
#undef FASTBP_CONN
    return ng;
}

/* ---- argument blocks shared by dispatchers and kernels ---- */

#define FASTBP_DECLARE_ARGS(FT, SUF)                                              \
    typedef struct {                                                              \
        const FT* X; const FT* W; const FT* b; FT* Y;                             \
        const FT* xlast;    /* zero-padded copy of the last sample */             \
        const fastbp_tile_group* groups; const int* pool; int ngroups;            \
        int n, c_in, h, w, c_out, act;                                            \
    } conv_fwd_args_##SUF;                                                        \
    typedef struct {                                                              \
        const FT* X; const FT* dZ; FT* dX; const FT* xlast;                       \
        const FT* wrot;     /* (c_in, c_out, 25): W rotated by 180 degrees */     \
        const fastbp_tile_group* groups; const int* pool; int ngroups; /* dX */   \
        const int* blist; const int* bn; /* input map -> its output maps */       \
        const int* pid;     /* (c_out, c_in) -> index of the connected pair */    \
        int n, c_in, h, w, c_out, act, npairs;                                    \
        ptrdiff_t dzp_stride;                                                     \
    } conv_bwd_args_##SUF;                                                        \
    typedef struct {                                                              \
        const FT* Y; const FT* coef; const FT* bias; const FT* dZ;                \
        FT* X; FT* dY;                                                            \
        int n, c, h, w, act;                                                      \
    } pool_args_##SUF;

FASTBP_DECLARE_ARGS(float, f32)
FASTBP_DECLARE_ARGS(double, f64)

#if FASTBP_VEC_EXT
typedef float fastbp_v4f __attribute__((vector_size(16)));
typedef double fastbp_v2d __attribute__((vector_size(16)));
static inline fastbp_v4f fastbp_ld_v4f(const float* p) { fastbp_v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void fastbp_st_v4f(float* p, fastbp_v4f v) { memcpy(p, &v, sizeof v); }
static inline fastbp_v4f fastbp_set1_v4f(float s) { fastbp_v4f v = {s, s, s, s}; return v; }
static inline fastbp_v2d fastbp_ld_v2d(const double* p) { fastbp_v2d v; memcpy(&v, p, sizeof v); return v; }
static inline void fastbp_st_v2d(double* p, fastbp_v2d v) { memcpy(p, &v, sizeof v); }
static inline fastbp_v2d fastbp_set1_v2d(double s) { fastbp_v2d v = {s, s}; return v; }
#endif

/* ---- pass 1: kernels, once per (dtype, instruction set) ---- */
#define FASTBP_CONV_PASS 1

/* float, portable */
#define FT float
#define EW(x) x##_f /* the element-wise loops of this dtype */
#define ARGS(x) x##_f32
#define NAME(x) x##_f32_port
#define ATTR
#define FASTBP_LANE_SUFFIX _v4f
#define FASTBP_LANE_COUNT 4
#include "conv_portable_lanes.h"
#include "conv.c"

/* double, portable */
#define FT double
#define EW(x) x##_d
#define ARGS(x) x##_f64
#define NAME(x) x##_f64_port
#define ATTR
#define FASTBP_LANE_SUFFIX _v2d
#define FASTBP_LANE_COUNT 2
#include "conv_portable_lanes.h"
#include "conv.c"

#if FB_X86_COPIES
/* float, AVX2 + FMA */
#define FT float
#define EW(x) x##_f /* the element-wise loops of this dtype */
#define ARGS(x) x##_f32
#define NAME(x) x##_f32_avx2
#define ATTR __attribute__((target("avx2,fma")))
#define VT __m256
#define VL 8
#define VLOAD(p) _mm256_loadu_ps(p)
/* One load whose value feeds several FMAs: the empty asm keeps GCC from
 * folding it into each FMA as a separate memory operand. */
#define VLOADR(p) __extension__({ __m256 fastbp_t_ = _mm256_loadu_ps(p); __asm__("" : "+x"(fastbp_t_)); fastbp_t_; })
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(s) _mm256_set1_ps(s)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#include "conv.c"

/* double, AVX2 + FMA */
#define FT double
#define EW(x) x##_d
#define ARGS(x) x##_f64
#define NAME(x) x##_f64_avx2
#define ATTR __attribute__((target("avx2,fma")))
#define VT __m256d
#define VL 4
#define VLOAD(p) _mm256_loadu_pd(p)
/* One load whose value feeds several FMAs: the empty asm keeps GCC from
 * folding it into each FMA as a separate memory operand. */
#define VLOADR(p) __extension__({ __m256d fastbp_t_ = _mm256_loadu_pd(p); __asm__("" : "+x"(fastbp_t_)); fastbp_t_; })
#define VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VSET1(s) _mm256_set1_pd(s)
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VADD(a, b) _mm256_add_pd((a), (b))
#include "conv.c"
#endif

#undef FASTBP_CONV_PASS

/* ---- pass 2: dispatchers, once per dtype ---- */
#define FASTBP_CONV_PASS 2

#define FT float
#define EW(x) x##_f
#define VLMAX 8
#define ARGS(x) x##_f32
#define PORT(x) x##_f32_port
#define AVX2(x) x##_f32_avx2
#define API(x) x##_f32
#include "conv.c"

#define FT double
#define EW(x) x##_d
#define VLMAX 4
#define ARGS(x) x##_f64
#define PORT(x) x##_f64_port
#define AVX2(x) x##_f64_avx2
#define API(x) x##_f64
#include "conv.c"

#undef FASTBP_CONV_PASS

/* ======================================================================== */
#elif FASTBP_CONV_PASS == 1
/* Kernels for one (dtype FT, instruction set): VT holds VL lanes of FT. */

/* Sum in a fixed order (8 interleaved partial sums, then a fixed tree). */
FASTBP_INLINE ATTR FT NAME(sum_fixed)(const FT* p, ptrdiff_t n)
{
    FT s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t;
    ptrdiff_t j = 0;
    int k;
    for (; j + 8 <= n; j += 8)
        for (k = 0; k < 8; k++) s[k] += p[j + k];
    t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; j < n; j++) t += p[j];
    return t;
}

/* Register tile of the wide correlation for one group of output maps (see
 * fastbp_tile_group): output 0, and for G == 2 also output 1, where the input
 * maps in S feed both (each input load feeds two multiply-adds) and those in
 * A (B) feed only output 0 (1):
 *   out[g*ostride + r*VL + lane] = sum over the input maps i of output g of
 *       sum_{kh,kw} wg[i*25 + kh*5 + kw] * src[i*pstride + kh*w + kw + r*VL + lane]
 * for r < R. R and G are compile-time constants at each call site, so acc[][]
 * lives in registers (G*R + G + 1 <= 16 vector registers). */
FASTBP_INLINE ATTR void NAME(tile_list1)(VT* acc, const int R, const FT* src, ptrdiff_t pstride,
                                         const int* lst, int nl, const FT* wb, int w, int kh0,
                                         int kh1)
{
    int r, j, kh, kw;
    for (j = 0; j < nl; j++) {
        const FT* s = src + lst[j] * pstride;
        const FT* k = wb + lst[j] * 25;
        for (kh = kh0; kh < kh1; kh++) {
            const FT* srow = s + kh * w;
            for (kw = 0; kw < 5; kw++) {
                const VT w0 = VSET1(k[kh * 5 + kw]);
                for (r = 0; r < R; r++) acc[r] = VFMA(w0, VLOAD(srow + kw + r * VL), acc[r]);
            }
        }
    }
}

FASTBP_INLINE ATTR void NAME(chunk_core)(FT* out, ptrdiff_t ostride, const int R, const int G,
                                         const FT* src, ptrdiff_t pstride, const int* pool,
                                         const fastbp_tile_group* grp, const FT* wb0,
                                         const FT* wb1, int w, int kh0, int kh1)
{
    VT acc[2][FASTBP_RMAX];
    int g, r, j, kh, kw;
    for (g = 0; g < G; g++)
        for (r = 0; r < R; r++) acc[g][r] = VSET1((FT)0);
    if (G == 2) {
        const int* lst = pool + grp->s;
        for (j = 0; j < grp->ns; j++) {
            const FT* s = src + lst[j] * pstride;
            const FT* k0 = wb0 + lst[j] * 25;
            const FT* k1 = wb1 + lst[j] * 25;
            for (kh = kh0; kh < kh1; kh++) {
                const FT* srow = s + kh * w;
                for (kw = 0; kw < 5; kw++) {
                    const VT w0 = VSET1(k0[kh * 5 + kw]);
                    const VT w1 = VSET1(k1[kh * 5 + kw]);
                    for (r = 0; r < R; r++) {
                        const VT xv = VLOADR(srow + kw + r * VL);
                        acc[0][r] = VFMA(w0, xv, acc[0][r]);
                        acc[1][r] = VFMA(w1, xv, acc[1][r]);
                    }
                }
            }
        }
        NAME(tile_list1)(acc[1], R, src, pstride, pool + grp->b, grp->nb, wb1, w, kh0, kh1);
    }
    NAME(tile_list1)(acc[0], R, src, pstride, pool + grp->a, grp->na, wb0, w, kh0, kh1);
    for (g = 0; g < G; g++)
        for (r = 0; r < R; r++) VSTORE(out + g * ostride + r * VL, acc[g][r]);
}

#define FASTBP_CHUNK_N(G, RN)                                                             \
    static ATTR void NAME(chunk##G##_##RN)(FT* out, ptrdiff_t ostride, const FT* src,      \
                                           ptrdiff_t pstride, const int* pool,             \
                                           const fastbp_tile_group* grp, const FT* wb0,    \
                                           const FT* wb1, int w, int kh0, int kh1)         \
    {                                                                                     \
        if (kh0 == 0 && kh1 == 5) /* constant bounds: the usual, faster loop */           \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, pool, grp, wb0, wb1, w, 0, 5); \
        else                                                                              \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, pool, grp, wb0, wb1, w, kh0, \
                             kh1);                                                        \
    }
FASTBP_CHUNK_N(1, 1)
FASTBP_CHUNK_N(1, 2)
FASTBP_CHUNK_N(1, 3)
FASTBP_CHUNK_N(1, 4)
FASTBP_CHUNK_N(1, 5)
FASTBP_CHUNK_N(1, 6)
FASTBP_CHUNK_N(1, 7)
FASTBP_CHUNK_N(1, 8)
FASTBP_CHUNK_N(2, 1)
FASTBP_CHUNK_N(2, 2)
FASTBP_CHUNK_N(2, 3)
FASTBP_CHUNK_N(2, 4)
FASTBP_CHUNK_N(2, 5)
FASTBP_CHUNK_N(2, 6)
#undef FASTBP_CHUNK_N

/* T[g*tstride + (0 .. nv*VL)] = wide correlation for the output maps of grp
 * (see chunk_core), in register tiles balanced so that none is much shorter.
 * Weights of (output grp->o + g, input i): wbase + (grp->o + g)*wostride + i*25.
 * rows > 0: the source rows outside [4, 4 + rows) are known to be zero (the
 * padded dZ of the full convolution), and kernel rows that would read only
 * those are skipped; rows == 0: no such knowledge. */
static ATTR void NAME(correlate)(FT* T, ptrdiff_t tstride, int nv, const FT* src,
                                 ptrdiff_t pstride, const int* pool,
                                 const fastbp_tile_group* grp, const FT* wbase,
                                 ptrdiff_t wostride, int w, int rows)
{
    const int G = grp->G, rmax = G == 1 ? 8 : 6;
    const FT* wb0 = wbase + grp->o * wostride;
    const FT* wb1 = wb0 + wostride;
    int nch, base, extra, c, v0 = 0;
    if (nv <= 0)
        return;
    nch = (nv + rmax - 1) / rmax;
    base = nv / nch;
    extra = nv % nch;
    for (c = 0; c < nch; c++) {
        const int R = base + (c < extra);
        FT* out = T + v0 * VL;
        const FT* s = src + v0 * VL;
        int kh0 = 0, kh1 = 5;
        if (rows > 0) {
            /* The tile's outputs lie in rows ra..rb; kernel row kh reads source
             * rows ra+kh..rb+kh (plus the zero columns 0..3 of the next row). */
            const int ra = v0 * VL / w, rb = ((v0 + R) * VL - 1) / w;
            kh0 = 4 - rb > 0 ? 4 - rb : 0;
            kh1 = rows + 4 - ra < 5 ? rows + 4 - ra : 5;
        }
#define FASTBP_CASE(GG, RN)                                                                \
    case RN:                                                                               \
        NAME(chunk##GG##_##RN)(out, tstride, s, pstride, pool, grp, wb0, wb1, w, kh0, kh1); \
        break;
        if (G == 1) {
            switch (R) {
                FASTBP_CASE(1, 1) FASTBP_CASE(1, 2) FASTBP_CASE(1, 3) FASTBP_CASE(1, 4)
                FASTBP_CASE(1, 5) FASTBP_CASE(1, 6) FASTBP_CASE(1, 7) FASTBP_CASE(1, 8)
            }
        } else {
            switch (R) {
                FASTBP_CASE(2, 1) FASTBP_CASE(2, 2) FASTBP_CASE(2, 3)
                FASTBP_CASE(2, 4) FASTBP_CASE(2, 5) FASTBP_CASE(2, 6)
            }
        }
#undef FASTBP_CASE
        v0 += R;
    }
}

/* Weight-gradient accumulators of G (1 or 2) pairs (o_g, i) that share the
 * input map x, for kernel row kh:
 *   g_g[(kh*5 + kw)*VL + lane] += sum_v dz_g[v*VL + lane] * x[v*VL + lane + kh*w + kw].
 * G*5 accumulators stay in registers; each x load feeds G multiply-adds. */
FASTBP_INLINE ATTR void NAME(gw_core)(FT* g0, FT* g1, const FT* dz0, const FT* dz1,
                                      const FT* x, int w, int nv, int kh, const int G)
{
    VT a0[5], a1[5];
    int kw, v;
    for (kw = 0; kw < 5; kw++) {
        a0[kw] = VLOAD(g0 + (kh * 5 + kw) * VL);
        if (G == 2)
            a1[kw] = VLOAD(g1 + (kh * 5 + kw) * VL);
    }
    for (v = 0; v < nv; v++) {
        const VT d0 = VLOAD(dz0 + v * VL);
        const FT* xv = x + v * VL + kh * w;
        if (G == 1) {
            for (kw = 0; kw < 5; kw++) a0[kw] = VFMA(d0, VLOAD(xv + kw), a0[kw]);
        } else {
            const VT d1 = VLOAD(dz1 + v * VL);
            for (kw = 0; kw < 5; kw++) {
                const VT xk = VLOADR(xv + kw);
                a0[kw] = VFMA(d0, xk, a0[kw]);
                a1[kw] = VFMA(d1, xk, a1[kw]);
            }
        }
    }
    for (kw = 0; kw < 5; kw++) {
        VSTORE(g0 + (kh * 5 + kw) * VL, a0[kw]);
        if (G == 2)
            VSTORE(g1 + (kh * 5 + kw) * VL, a1[kw]);
    }
}

static ATTR void NAME(gw_one)(FT* g0, const FT* dz0, const FT* x, int w, int nv)
{
    int kh;
    for (kh = 0; kh < 5; kh++) NAME(gw_core)(g0, g0, dz0, dz0, x, w, nv, kh, 1);
}

static ATTR void NAME(gw_two)(FT* g0, FT* g1, const FT* dz0, const FT* dz1, const FT* x,
                              int w, int nv)
{
    int kh;
    for (kh = 0; kh < 5; kh++) NAME(gw_core)(g0, g1, dz0, dz1, x, w, nv, kh, 2);
}

/* Forward pass of one sample. T: scratch of 2*tstride elements, with
 * tstride >= h*w + VL (one wide plane per output map of a tile). */
static ATTR void NAME(conv_fwd_sample)(const ARGS(conv_fwd_args)* a, int i, FT* T,
                                       ptrdiff_t tstride)
{
    const int c_in = a->c_in, c_out = a->c_out, w = a->w, ho = a->h - 4, wo = a->w - 4;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)ho * wo;
    const int nv = ((ho - 1) * w + wo + VL - 1) / VL;
    const FT* x = (i == a->n - 1) ? a->xlast : a->X + (ptrdiff_t)i * c_in * plane;
    FT* y = a->Y + (ptrdiff_t)i * c_out * oplane;
    int k, g, r, c;
    for (k = 0; k < a->ngroups; k++) {
        const fastbp_tile_group* grp = a->groups + k;
        NAME(correlate)(T, tstride, nv, x, plane, a->pool, grp, a->W, (ptrdiff_t)c_in * 25, w,
                        0);
        for (g = 0; g < grp->G; g++) {
            FT* yo = y + (grp->o + g) * oplane;
            const FT* t = T + g * tstride;
            const FT bias = a->b[grp->o + g];
            const VT vb = VSET1(bias);
            /* Drop the wasted columns and add the bias: whole vectors, the
             * last one of a row overlapping the one before it. */
            for (r = 0; r < ho; r++) {
                const FT* tr = t + r * w;
                FT* yr = yo + r * wo;
                if (wo >= VL) {
                    for (c = 0; c + VL <= wo; c += VL) VSTORE(yr + c, VADD(VLOAD(tr + c), vb));
                    if (c < wo)
                        VSTORE(yr + wo - VL, VADD(VLOAD(tr + wo - VL), vb));
                } else {
                    for (c = 0; c < wo; c++) yr[c] = tr[c] + bias;
                }
            }
            EW(fastbp_act)(yo, yo, NULL, oplane, a->act);
        }
    }
}

/* Backward pass of samples [i0, i1): writes dX of those samples (if wanted)
 * and part = [grad_W of the connected pairs (npairs, 25), grad_b (c_out)]
 * summed over the block. scratch: c_out*dzp_stride + npairs*25*VL + 2*tstride. */
static ATTR void NAME(conv_bwd_block)(const ARGS(conv_bwd_args)* a, int i0, int i1,
                                      FT* scratch, ptrdiff_t tstride, FT* part)
{
    const int c_in = a->c_in, c_out = a->c_out, w = a->w, ho = a->h - 4, wo = a->w - 4;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)ho * wo;
    const ptrdiff_t st = a->dzp_stride, ng = (ptrdiff_t)a->npairs * 25;
    const int nv = ((ho - 1) * w + wo + VL - 1) / VL;
    const int nvx = (int)((plane + VL - 1) / VL);
    /* scratch is 64-byte aligned and st a multiple of 16: starting the padded
     * planes VL - (4w + 4) % VL elements in makes the wide dZ (read at 4w + 4)
     * vector-aligned, so its loads never straddle a cache line. */
    FT* dzp = scratch + (VL - (4 * w + 4) % VL) % VL;
    FT* gacc = scratch + c_out * st + FASTBP_ALIGN_PAD;
    FT* T = gacc + ng * VL;
    FT* gb = part + ng;
    ptrdiff_t p;
    int i, co, ci, k, r, lane, g;

    memset(dzp, 0, sizeof(FT) * c_out * st); /* the padding stays zero */
    memset(gacc, 0, sizeof(FT) * ng * VL);
    for (co = 0; co < c_out; co++) gb[co] = 0;

    for (i = i0; i < i1; i++) {
        const FT* x = (i == a->n - 1) ? a->xlast : a->X + (ptrdiff_t)i * c_in * plane;
        const FT* dz = a->dZ + (ptrdiff_t)i * c_out * oplane;
        for (co = 0; co < c_out; co++) {
            const FT* src = dz + co * oplane;
            FT* dst = dzp + co * st + 4 * w + 4;
            for (r = 0; r < ho; r++) memcpy(dst + r * w, src + r * wo, sizeof(FT) * wo);
            gb[co] += NAME(sum_fixed)(src, oplane);
        }
        /* grad_W: the output maps of input map ci, two at a time. */
        for (ci = 0; ci < c_in; ci++) {
            const int* lst = a->blist + (ptrdiff_t)ci * c_out;
            const FT* xs = x + ci * plane;
            for (k = 0; k < a->bn[ci]; k += 2) {
                const int o0 = lst[k];
                FT* g0 = gacc + (ptrdiff_t)a->pid[o0 * c_in + ci] * 25 * VL;
                const FT* dz0 = dzp + o0 * st + 4 * w + 4;
                if (k + 1 < a->bn[ci]) {
                    const int o1 = lst[k + 1];
                    NAME(gw_two)(g0, gacc + (ptrdiff_t)a->pid[o1 * c_in + ci] * 25 * VL, dz0,
                                 dzp + o1 * st + 4 * w + 4, xs, w, nv);
                } else {
                    NAME(gw_one)(g0, dz0, xs, w, nv);
                }
            }
        }
        if (a->dX != NULL) {
            FT* dx = a->dX + (ptrdiff_t)i * c_in * plane;
            for (k = 0; k < a->ngroups; k++) {
                const fastbp_tile_group* grp = a->groups + k;
                NAME(correlate)(T, tstride, nvx, dzp, st, a->pool, grp, a->wrot,
                                (ptrdiff_t)c_out * 25, w, ho);
                for (g = 0; g < grp->G; g++) {
                    ci = grp->o + g;
                    EW(fastbp_dact)(dx + ci * plane, T + g * tstride, NULL, x + ci * plane,
                                    plane, a->act);
                }
            }
        }
    }
    for (p = 0; p < ng; p++) {
        const FT* gv = gacc + p * VL;
        FT s = gv[0];
        for (lane = 1; lane < VL; lane++) s += gv[lane];
        part[p] = s;
    }
}

/* Pooling forward of one sample. */
static ATTR void NAME(pool_fwd_sample)(const ARGS(pool_args)* a, int i)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    int ch, r, c;
    for (ch = 0; ch < a->c; ch++) {
        const FT* y = a->Y + ((ptrdiff_t)i * a->c + ch) * plane;
        FT* x = a->X + ((ptrdiff_t)i * a->c + ch) * oplane;
        const FT k = a->coef[ch] * (FT)0.25, bias = a->bias[ch];
        for (r = 0; r < h2; r++) {
            const FT* y0 = y + 2 * r * w;
            const FT* y1 = y0 + w;
            FT* xr = x + r * w2;
            for (c = 0; c < w2; c++)
                xr[c] = k * ((y0[2 * c] + y0[2 * c + 1]) + (y1[2 * c] + y1[2 * c + 1])) + bias;
        }
        EW(fastbp_act)(x, x, NULL, oplane, a->act);
    }
}

/* Pooling backward of samples [i0, i1): dY of those samples (if wanted) and
 * part = [grad_coef (c), grad_bias (c)] over the block. T: h*w/4 + h*w elements. */
static ATTR void NAME(pool_bwd_block)(const ARGS(pool_args)* a, int i0, int i1, FT* T, FT* part)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    FT* E = T + oplane;
    int i, ch, r, c;
    for (ch = 0; ch < 2 * a->c; ch++) part[ch] = 0;
    for (i = i0; i < i1; i++) {
        for (ch = 0; ch < a->c; ch++) {
            const ptrdiff_t off = (ptrdiff_t)i * a->c + ch;
            const FT* y = a->Y + off * plane;
            const FT* dz = a->dZ + off * oplane;
            for (r = 0; r < h2; r++) {
                const FT* y0 = y + 2 * r * w;
                const FT* y1 = y0 + w;
                for (c = 0; c < w2; c++)
                    T[r * w2 + c] = dz[r * w2 + c] * ((FT)0.25 * ((y0[2 * c] + y0[2 * c + 1]) +
                                                                 (y1[2 * c] + y1[2 * c + 1])));
            }
            part[ch] += NAME(sum_fixed)(T, oplane);
            part[a->c + ch] += NAME(sum_fixed)(dz, oplane);
            if (a->dY != NULL) {
                /* dY[r, c] = k * dz[r / 2, c / 2] * g'(Y[r, c]) */
                const FT k = a->coef[ch] * (FT)0.25;
                for (r = 0; r < a->h; r++)
                    for (c = 0; c < w; c++) E[r * w + c] = k * dz[(r / 2) * w2 + c / 2];
                EW(fastbp_dact)(a->dY + off * plane, E, NULL, y, plane, a->act);
            }
        }
    }
}

#undef FT
#undef EW
#undef ARGS
#undef NAME
#undef ATTR
#undef VT
#undef VL
#undef VLOAD
#undef VLOADR
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VADD
#undef FASTBP_LANE_SUFFIX
#undef FASTBP_LANE_COUNT
#undef FASTBP_LANE_PASTE
#undef FASTBP_LANE_EXPAND
#undef FASTBP_LANE

/* ======================================================================== */
#elif FASTBP_CONV_PASS == 2
/* Dispatchers for one dtype FT: allocation, OpenMP loops, fixed-order sums. */

#if FB_X86_COPIES
#define CALL_ISA(isa, fn, ...) ((isa) ? AVX2(fn)(__VA_ARGS__) : PORT(fn)(__VA_ARGS__))
#else
#define CALL_ISA(isa, fn, ...) PORT(fn)(__VA_ARGS__)
#endif

/* list[o*ni + k] = k-th i (ascending) with table[o, i] (or table[i, o] when
 * transposed); count[o] = how many. Returns the number of connected pairs. */
static int API(fastbp_conv_lists)(const unsigned char* table, int c_out, int c_in,
                                  int transposed, int* list, int* count)
{
    int o, i, total = 0;
    const int no = transposed ? c_in : c_out, ni = transposed ? c_out : c_in;
    for (o = 0; o < no; o++) {
        count[o] = 0;
        for (i = 0; i < ni; i++) {
            const unsigned char t = transposed ? table[i * c_in + o] : table[o * c_in + i];
            if (t)
                list[o * ni + count[o]++] = i;
        }
        total += count[o];
    }
    return total;
}

/* A zero-padded copy of the last sample: kernels read up to VL - 2 elements
 * past a plane, which for the last plane of X would leave the array. */
static FT* API(fastbp_pad_last)(const FT* X, int n, ptrdiff_t sample)
{
    FT* xlast = (FT*)malloc(sizeof(FT) * (sample + FASTBP_XPAD));
    if (xlast != NULL) {
        memcpy(xlast, X + (ptrdiff_t)(n - 1) * sample, sizeof(FT) * sample);
        memset(xlast + sample, 0, sizeof(FT) * FASTBP_XPAD);
    }
    return xlast;
}

int API(fastbp_conv5x5_forward)(const FT* X, const FT* W, const FT* b,
                                const unsigned char* table, FT* Y, int n, int c_in,
                                int h, int w, int c_out, int act, int n_threads)
{
    const int isa = fb_level() >= FB_LEVEL_AVX2;
    const ptrdiff_t plane = (ptrdiff_t)h * w, tstride = plane + 2 * VLMAX, tsize = 2 * tstride;
    int nt = n_threads < 1 ? 1 : n_threads;
    int units = 0, joined = 0, *pool;
    fastbp_tile_group* groups;
    FT *xlast, *tbuf;
    ARGS(conv_fwd_args) a;
    if (n <= 0 || c_out <= 0)
        return 0;
    if (nt > n)
        nt = n;
    groups = (fastbp_tile_group*)malloc(sizeof(fastbp_tile_group) * ((size_t)c_out + 1));
    pool = (int*)malloc(sizeof(int) * ((size_t)c_out * c_in + 1));
    xlast = API(fastbp_pad_last)(X, n, c_in * plane);
    tbuf = (FT*)malloc(sizeof(FT) * tsize * nt);
    if (groups == NULL || pool == NULL || xlast == NULL || tbuf == NULL) {
        free(groups); free(pool); free(xlast); free(tbuf);
        return -1;
    }
    a.ngroups = fastbp_plan_tiles(table, c_out, c_in, 0, groups, pool);
    a.groups = groups; a.pool = pool;
    a.X = X; a.W = W; a.b = b; a.Y = Y; a.xlast = xlast;
    a.n = n; a.c_in = c_in; a.h = h; a.w = w; a.c_out = c_out; a.act = act;

    FB_TEAM(nt)
    {
        int u;
        FB_FOR_UNITS(u, n, &units)
            CALL_ISA(isa, conv_fwd_sample, &a, u, tbuf + omp_get_thread_num() * tsize, tstride);
        fb_team_join(&joined);
    }

    free(groups); free(pool); free(xlast); free(tbuf);
    return 0;
}

int API(fastbp_conv5x5_backward)(const FT* X, const FT* W, const FT* dZ,
                                 const unsigned char* table, FT* grad_W, FT* grad_b,
                                 FT* dX, int n, int c_in, int h, int w, int c_out,
                                 int in_act, int n_threads)
{
    const int isa = fb_level() >= FB_LEVEL_AVX2;
    const int ho = h - 4;
    const ptrdiff_t plane = (ptrdiff_t)h * w;
    const int nblocks = (n + FASTBP_BLOCK - 1) / FASTBP_BLOCK;
    int nt = n_threads < 1 ? 1 : n_threads;
    int npairs, pair, co, ci, k, wb, t;
    int *lists, *blist, *bn, *pid, *pool;
    fastbp_tile_group* groups;
    ptrdiff_t dzp_stride, ng, plen, ssize, j;
    const ptrdiff_t tstride = plane + 2 * VLMAX;
    FT *xlast = NULL, *wrot = NULL, *scratch = NULL, *part = NULL, *total = NULL;
    void* scratch_mem = NULL;
    ARGS(conv_bwd_args) a;

    /* blist (c_in, c_out), bn (c_in), pid (c_out, c_in), pool (c_in, c_out) */
    lists = (int*)malloc(sizeof(int) * (3 * (size_t)c_out * c_in + c_in + 1));
    groups = (fastbp_tile_group*)malloc(sizeof(fastbp_tile_group) * ((size_t)c_in + 1));
    if (lists == NULL || groups == NULL) {
        free(lists); free(groups);
        return -1;
    }
    blist = lists;
    bn = blist + (ptrdiff_t)c_out * c_in;
    pid = bn + c_in;
    pool = pid + (ptrdiff_t)c_out * c_in;
    API(fastbp_conv_lists)(table, c_out, c_in, 1, blist, bn);
    for (co = 0, npairs = 0; co < c_out; co++)
        for (ci = 0; ci < c_in; ci++)
            pid[co * c_in + ci] = table[co * c_in + ci] ? npairs++ : -1;
    ng = (ptrdiff_t)npairs * 25;
    plen = ng + c_out;
    /* Rows: 4 zero, ho of data, 4 zero; then room for the last tile. */
    dzp_stride = (ptrdiff_t)(ho + 8) * w + 4 + 2 * VLMAX;
    dzp_stride = (dzp_stride + 15) / 16 * 16;
    ssize = c_out * dzp_stride + FASTBP_ALIGN_PAD + ng * VLMAX + 2 * tstride;
    ssize = (ssize + 15) / 16 * 16; /* each thread's scratch stays 64-byte aligned */
    if (nt > nblocks)
        nt = nblocks;
    if (nt < 1)
        nt = 1;

    if (n > 0) {
        xlast = API(fastbp_pad_last)(X, n, c_in * plane);
        wrot = (FT*)malloc(sizeof(FT) * ((size_t)c_in * c_out * 25 + 1));
        scratch_mem = malloc(sizeof(FT) * ssize * nt + 64);
        scratch = (FT*)fastbp_align64(scratch_mem);
        part = (FT*)malloc(sizeof(FT) * plen * FASTBP_WAVE);
    }
    total = (FT*)malloc(sizeof(FT) * plen);
    if (total == NULL || (n > 0 && (xlast == NULL || wrot == NULL || scratch == NULL ||
                                    part == NULL))) {
        free(lists); free(groups); free(xlast); free(wrot); free(scratch_mem); free(part);
        free(total);
        return -1;
    }
    for (j = 0; j < plen; j++) total[j] = 0;

    if (n > 0) {
        for (ci = 0; ci < c_in; ci++)
            for (co = 0; co < c_out; co++)
                for (k = 0; k < 25; k++)
                    wrot[((ptrdiff_t)ci * c_out + co) * 25 + k] =
                        W[((ptrdiff_t)co * c_in + ci) * 25 + 24 - k];
        a.X = X; a.dZ = dZ; a.dX = dX; a.xlast = xlast; a.wrot = wrot;
        a.ngroups = fastbp_plan_tiles(table, c_out, c_in, 1, groups, pool);
        a.groups = groups; a.pool = pool; a.blist = blist; a.bn = bn;
        a.n = n; a.c_in = c_in; a.h = h; a.w = w; a.c_out = c_out; a.act = in_act;
        a.pid = pid; a.npairs = npairs; a.dzp_stride = dzp_stride;

        for (wb = 0; wb < nblocks; wb += FASTBP_WAVE) {
            const int nbw = nblocks - wb < FASTBP_WAVE ? nblocks - wb : FASTBP_WAVE;
            const int ntw = nt < nbw ? nt : nbw;
            int units = 0, joined = 0;
            FB_TEAM(ntw)
            {
                int u;
                FB_FOR_UNITS(u, nbw, &units) {
                    const int i0 = (wb + u) * FASTBP_BLOCK;
                    const int i1 = i0 + FASTBP_BLOCK < n ? i0 + FASTBP_BLOCK : n;
                    CALL_ISA(isa, conv_bwd_block, &a, i0, i1,
                             scratch + omp_get_thread_num() * ssize, tstride, part + u * plen);
                }
                fb_team_join(&joined);
            }
            for (t = 0; t < nbw; t++)
                for (j = 0; j < plen; j++) total[j] += part[t * plen + j];
        }
    }

    memset(grad_W, 0, sizeof(FT) * (size_t)c_out * c_in * 25);
    pair = 0;
    for (co = 0; co < c_out; co++)
        for (ci = 0; ci < c_in; ci++)
            if (table[co * c_in + ci]) {
                memcpy(grad_W + ((ptrdiff_t)co * c_in + ci) * 25, total + pair * 25,
                       sizeof(FT) * 25);
                pair++;
            }
    for (co = 0; co < c_out; co++) grad_b[co] = total[ng + co];

    free(lists); free(groups); free(xlast); free(wrot); free(scratch_mem); free(part);
    free(total);
    return 0;
}

int API(fastbp_pool2x2_forward)(const FT* Y, const FT* coef, const FT* bias, FT* X,
                                int n, int c, int h, int w, int act, int n_threads)
{
    const int isa = fb_level() >= FB_LEVEL_AVX2;
    int nt = n_threads < 1 ? 1 : n_threads;
    int units = 0, joined = 0;
    ARGS(pool_args) a;
    if ((ptrdiff_t)n * c * h * w < FASTBP_MIN_PARALLEL)
        nt = 1;
    if (nt > n)
        nt = n > 0 ? n : 1;
    a.Y = Y; a.coef = coef; a.bias = bias; a.dZ = NULL; a.X = X; a.dY = NULL;
    a.n = n; a.c = c; a.h = h; a.w = w; a.act = act;
    FB_TEAM(nt)
    {
        int u;
        FB_FOR_UNITS(u, n, &units)
            CALL_ISA(isa, pool_fwd_sample, &a, u);
        fb_team_join(&joined);
    }
    return 0;
}

int API(fastbp_pool2x2_backward)(const FT* Y, const FT* coef, const FT* dZ,
                                 FT* grad_coef, FT* grad_bias, FT* dY, int n, int c,
                                 int h, int w, int in_act, int n_threads)
{
    const int isa = fb_level() >= FB_LEVEL_AVX2;
    const int nblocks = (n + FASTBP_BLOCK - 1) / FASTBP_BLOCK;
    const ptrdiff_t tsize = (ptrdiff_t)(h / 2) * (w / 2) + (ptrdiff_t)h * w;
    const ptrdiff_t plen = 2 * (ptrdiff_t)c;
    int nt = n_threads < 1 ? 1 : n_threads;
    int wb, t, ch;
    ptrdiff_t j;
    FT *tbuf, *part, *total;
    ARGS(pool_args) a;
    if ((ptrdiff_t)n * c * h * w < FASTBP_MIN_PARALLEL)
        nt = 1;
    if (nt > nblocks)
        nt = nblocks > 0 ? nblocks : 1;
    tbuf = (FT*)malloc(sizeof(FT) * tsize * nt);
    part = (FT*)malloc(sizeof(FT) * (plen * FASTBP_WAVE + 1));
    total = (FT*)malloc(sizeof(FT) * (plen + 1));
    if (tbuf == NULL || part == NULL || total == NULL) {
        free(tbuf); free(part); free(total);
        return -1;
    }
    for (j = 0; j < plen; j++) total[j] = 0;
    a.Y = Y; a.coef = coef; a.bias = NULL; a.dZ = dZ; a.X = NULL; a.dY = dY;
    a.n = n; a.c = c; a.h = h; a.w = w; a.act = in_act;
    for (wb = 0; wb < nblocks; wb += FASTBP_WAVE) {
        const int nbw = nblocks - wb < FASTBP_WAVE ? nblocks - wb : FASTBP_WAVE;
        const int ntw = nt < nbw ? nt : nbw;
        int units = 0, joined = 0;
        FB_TEAM(ntw)
        {
            int u;
            FB_FOR_UNITS(u, nbw, &units) {
                const int i0 = (wb + u) * FASTBP_BLOCK;
                const int i1 = i0 + FASTBP_BLOCK < n ? i0 + FASTBP_BLOCK : n;
                CALL_ISA(isa, pool_bwd_block, &a, i0, i1, tbuf + omp_get_thread_num() * tsize,
                         part + u * plen);
            }
            fb_team_join(&joined);
        }
        for (t = 0; t < nbw; t++)
            for (j = 0; j < plen; j++) total[j] += part[t * plen + j];
    }
    for (ch = 0; ch < c; ch++) {
        grad_coef[ch] = total[ch];
        grad_bias[ch] = total[c + ch];
    }
    free(tbuf); free(part); free(total);
    return 0;
}

void API(fastbp_bias_act_rows)(FT* A, const FT* bias, int rows, int cols, int act,
                               int n_threads)
{
    int nt = n_threads < 1 ? 1 : n_threads;
    int units = 0, joined = 0;
    if ((ptrdiff_t)rows * cols < FASTBP_MIN_PARALLEL)
        nt = 1;
    FB_TEAM(nt)
    {
        int u;
        FB_FOR_UNITS(u, rows, &units) {
            FT* row = A + (ptrdiff_t)u * cols;
            EW(fastbp_act)(row, row, bias, cols, act);
        }
        fb_team_join(&joined);
    }
}

void API(fastbp_mul_deriv)(FT* D, const FT* A, ptrdiff_t size, int act, int n_threads)
{
    const ptrdiff_t piece = 4096;
    const int npieces = (int)((size + piece - 1) / piece);
    int nt = n_threads < 1 ? 1 : n_threads;
    int units = 0, joined = 0;
    if (act == 0)
        return;
    if (size < FASTBP_MIN_PARALLEL)
        nt = 1;
    FB_TEAM(nt)
    {
        int u;
        FB_FOR_UNITS(u, npieces, &units) {
            const ptrdiff_t start = (ptrdiff_t)u * piece;
            const ptrdiff_t len = size - start < piece ? size - start : piece;
            EW(fastbp_dact)(D + start, D + start, NULL, A + start, len, act);
        }
        fb_team_join(&joined);
    }
}

#undef CALL_ISA
#undef FT
#undef EW
#undef VLMAX
#undef ARGS
#undef PORT
#undef AVX2
#undef API

#endif /* FASTBP_CONV_PASS */
