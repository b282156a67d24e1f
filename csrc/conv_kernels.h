/* Template of conv.c's kernels for one (dtype, instruction set) pair; conv.c
 * includes it once per pair (no include guard), after defining
 * FB_LANES_F32 (1 float, 0 double) and FB_LANES_ISA (an FB_LEVEL_* of
 * fb_dispatch.h). fb_lanes.h turns those into FT, NAME(x) (this copy's
 * name for x), ATTR (its target attribute) and the lane operations: VT holds
 * VL lanes of FT. The algorithms are described at the top of conv.c.
 */
#include "fb_lanes.h"
#include "fb_lanes_partial.h"

/* Output maps of this copy's tiles (conv.c's FASTBP_TILE_GMAX): 2, or 4
 * where there are 32 vector registers. */
#define GT FASTBP_TILE_GMAX(FB_LANES_ISA)
/* Samples of a block (conv.c's FASTBP_BLOCK_LANES) */
#define BL FASTBP_BLOCK_LANES(FB_LANES_F32)

/* ---- partial vectors (load_n, store_n: fb_lanes_partial.h) ----
 * Pooling's rows of any width: pairs of adjacent elements summed, and each
 * element stored twice. */
#if FB_LANES_ISA == FB_LEVEL_AVX512
#if FB_LANES_F32
typedef int NAME(index_t); /* a permute index: as wide as a lane */
#else
typedef long long NAME(index_t);
#endif
/* The permute index whose lane l is (scale l + base) / div (constants at
 * every call, so the compiler folds it into one vector constant). */
FB_INLINE ATTR __m512i NAME(lane_index)(int scale, int base, int div)
{
    NAME(index_t) idx[VL];
    int l;
    for (l = 0; l < VL; l++) idx[l] = (scale * l + base) / div;
    return _mm512_loadu_si512((const void*)idx);
}
/* (p[0] + p[1], p[2] + p[3], ...): n sums of adjacent pairs, zero beyond. */
FB_INLINE ATTR VT NAME(pair_sums_n)(const FT* p, int n)
{
    const __m512i even = NAME(lane_index)(2, 0, 1), odd = NAME(lane_index)(2, 1, 1);
    const VT lo = NAME(load_n)(p, 2 * n < VL ? 2 * n : VL);
    const VT hi = NAME(load_n)(p + VL, 2 * n > VL ? 2 * n - VL : 0);
    return VADD(FASTBP_LANE(permutex2var)(lo, even, hi), FASTBP_LANE(permutex2var)(lo, odd, hi));
}
/* p[2l] = p[2l + 1] = v[l] for l < n. */
FB_INLINE ATTR void NAME(store_twice_n)(FT* p, VT v, int n)
{
    const __m512i first = NAME(lane_index)(1, 0, 2), second = NAME(lane_index)(1, VL, 2);
    NAME(store_n)(p, FASTBP_LANE(permutexvar)(first, v), 2 * n < VL ? 2 * n : VL);
    if (2 * n > VL)
        NAME(store_n)(p + VL, FASTBP_LANE(permutexvar)(second, v), 2 * n - VL);
}

#elif FB_LANES_ISA == FB_LEVEL_AVX2
#if FB_LANES_F32
#define FASTBP_CAST_PD(v) _mm256_castps_pd(v)
#define FASTBP_CAST_FT(v) _mm256_castpd_ps(v)
#else
#define FASTBP_CAST_PD(v) (v)
#define FASTBP_CAST_FT(v) (v)
#endif
FB_INLINE ATTR VT NAME(pair_sums_n)(const FT* p, int n)
{
    const VT lo = NAME(load_n)(p, 2 * n < VL ? 2 * n : VL);
    const VT hi = NAME(load_n)(p + VL, 2 * n > VL ? 2 * n - VL : 0);
    /* hadd interleaves the 128-bit halves of lo and hi; put them in order */
    return FASTBP_CAST_FT(_mm256_permute4x64_pd(FASTBP_CAST_PD(FASTBP_LANE(hadd)(lo, hi)), 0xD8));
}
FB_INLINE ATTR void NAME(store_twice_n)(FT* p, VT v, int n)
{
    const VT a = FASTBP_LANE(unpacklo)(v, v), b = FASTBP_LANE(unpackhi)(v, v);
    NAME(store_n)(p, FASTBP_LANE(permute2f128)(a, b, 0x20), 2 * n < VL ? 2 * n : VL);
    if (2 * n > VL)
        NAME(store_n)(p + VL, FASTBP_LANE(permute2f128)(a, b, 0x31), 2 * n - VL);
}
#undef FASTBP_CAST_PD
#undef FASTBP_CAST_FT

#else /* portable: whole vectors shuffled (SSE2, NEON), a partial one through a small array */
#if FASTBP_VEC_EXT && FB_LANES_F32
#define FASTBP_EVEN 0, 2, 4, 6
#define FASTBP_ODD 1, 3, 5, 7
#define FASTBP_FIRST 0, 0, 1, 1
#define FASTBP_SECOND 2, 2, 3, 3
typedef int NAME(mask_t) __attribute__((vector_size(16)));
#elif FASTBP_VEC_EXT
#define FASTBP_EVEN 0, 2
#define FASTBP_ODD 1, 3
#define FASTBP_FIRST 0, 0
#define FASTBP_SECOND 1, 1
typedef long long NAME(mask_t) __attribute__((vector_size(16)));
#endif
#if FASTBP_VEC_EXT && defined(__clang__)
#define FASTBP_SHUFFLE(a, b, IDX) __builtin_shufflevector((a), (b), IDX)
#elif FASTBP_VEC_EXT
#define FASTBP_SHUFFLE(a, b, IDX) __builtin_shuffle((a), (b), (NAME(mask_t)){IDX})
#endif
FB_INLINE ATTR VT NAME(pair_sums_n)(const FT* p, int n)
{
    FT t[VL];
    int l;
#ifdef FASTBP_SHUFFLE
    if (n == VL) {
        const VT lo = VLOAD(p), hi = VLOAD(p + VL);
        return VADD(FASTBP_SHUFFLE(lo, hi, FASTBP_EVEN), FASTBP_SHUFFLE(lo, hi, FASTBP_ODD));
    }
#endif
    for (l = 0; l < VL; l++) t[l] = l < n ? p[2 * l] + p[2 * l + 1] : (FT)0;
    return VLOAD(t);
}
FB_INLINE ATTR void NAME(store_twice_n)(FT* p, VT v, int n)
{
    FT t[VL];
    int l;
#ifdef FASTBP_SHUFFLE
    if (n == VL) {
        VSTORE(p, FASTBP_SHUFFLE(v, v, FASTBP_FIRST));
        VSTORE(p + VL, FASTBP_SHUFFLE(v, v, FASTBP_SECOND));
        return;
    }
#endif
    VSTORE(t, v);
    for (l = 0; l < n; l++) p[2 * l] = p[2 * l + 1] = t[l];
}
#undef FASTBP_SHUFFLE
#undef FASTBP_EVEN
#undef FASTBP_ODD
#undef FASTBP_FIRST
#undef FASTBP_SECOND
#endif

/* ---- blocks of samples side by side ----
 * A block holds BL samples (16 floats, 8 doubles: the widest vector of the
 * dtype) in sub-blocks of VL samples (one sub-block where VL == BL), each
 * with its elements interleaved: element p of sample l is at
 * [(l / VL)*S + p*VL + l % VL], S the buffer's sub-block stride. A copy
 * runs over the sub-blocks that hold samples, one after the other, and
 * reads whole cache lines of one. Each lane follows the same sequence of
 * operations on every path, so the vector width changes no result. */

/* dst[j*ds + l] = src[l*ss + j] for l, j < VL: one VL x VL
 * transpose, in registers on x86. */
FB_INLINE ATTR void NAME(transpose_vl)(FT* dst, ptrdiff_t ds, const FT* src, ptrdiff_t ss)
{
#if FB_LANES_ISA == FB_LEVEL_AVX512
    /* log2(VL) stages; stage b swaps bit b of the row and the column index */
    VT r[VL];
    int i, b, l;
#pragma GCC unroll 16
    for (l = 0; l < VL; l++) r[l] = VLOAD(src + l * ss);
#pragma GCC unroll 4
    for (b = 1; b < VL; b *= 2) {
        NAME(index_t) lo[VL], hi[VL];
        __m512i vlo, vhi;
#pragma GCC unroll 16
        for (l = 0; l < VL; l++) {
            lo[l] = (l & b) ? VL + l - b : l;
            hi[l] = (l & b) ? VL + l : l + b;
        }
        vlo = _mm512_loadu_si512((const void*)lo);
        vhi = _mm512_loadu_si512((const void*)hi);
#pragma GCC unroll 16
        for (i = 0; i < VL; i++)
            if (!(i & b)) {
                const VT x = r[i], y = r[i + b];
                r[i] = FASTBP_LANE(permutex2var)(x, vlo, y);
                r[i + b] = FASTBP_LANE(permutex2var)(x, vhi, y);
            }
    }
#pragma GCC unroll 16
    for (l = 0; l < VL; l++) VSTORE(dst + l * ds, r[l]);
#elif FB_LANES_ISA == FB_LEVEL_AVX2 && FB_LANES_F32
    __m256 r[8], t[8], u[8];
    int l;
    for (l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(src + l * ss);
    for (l = 0; l < 8; l += 2) {
        t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
        t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
    }
    for (l = 0; l < 8; l += 4) {
        u[l] = _mm256_shuffle_ps(t[l], t[l + 2], 0x44);
        u[l + 1] = _mm256_shuffle_ps(t[l], t[l + 2], 0xEE);
        u[l + 2] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0x44);
        u[l + 3] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0xEE);
    }
    for (l = 0; l < 4; l++) {
        r[l] = _mm256_permute2f128_ps(u[l], u[l + 4], 0x20);
        r[l + 4] = _mm256_permute2f128_ps(u[l], u[l + 4], 0x31);
    }
    for (l = 0; l < 8; l++) VSTORE(dst + l * ds, r[l]);
#elif FB_LANES_ISA == FB_LEVEL_AVX2
    __m256d r[4], t[4];
    int l;
    for (l = 0; l < 4; l++) r[l] = _mm256_loadu_pd(src + l * ss);
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t[0], t[2], 0x20);
    r[1] = _mm256_permute2f128_pd(t[1], t[3], 0x20);
    r[2] = _mm256_permute2f128_pd(t[0], t[2], 0x31);
    r[3] = _mm256_permute2f128_pd(t[1], t[3], 0x31);
    for (l = 0; l < 4; l++) VSTORE(dst + l * ds, r[l]);
#else
    int l, j;
    for (j = 0; j < VL; j++)
        for (l = 0; l < VL; l++) dst[j * ds + l] = src[l * ss + j];
#endif
}

/* dst[(l / VL)*sub + p*VL + l % VL] = src[l*ss + p] for p < P and l < nv
 * (one block of nv samples, in sub-blocks sub elements apart); the lanes
 * from nv to the end of their sub-block are zero. */
static ATTR void NAME(to_lanes)(FT* dst, ptrdiff_t sub, const FT* src, ptrdiff_t ss, int nv,
                                ptrdiff_t P)
{
    ptrdiff_t p;
    int l0, l;
    for (l0 = 0; l0 < nv; l0 += VL) {
        FT* d = dst + (l0 / VL) * sub;
        p = 0;
        if (l0 + VL <= nv)
            for (; p + VL <= P; p += VL)
                NAME(transpose_vl)(d + p * VL, VL, src + l0 * ss + p, ss);
        for (; p < P; p++)
            for (l = 0; l < VL; l++) d[p * VL + l] = l0 + l < nv ? src[(l0 + l) * ss + p] : (FT)0;
    }
}

/* dst[l*ds + p] = src[(l / VL)*sub + p*VL + l % VL] for p < P and l < nv:
 * the inverse of to_lanes, from sub-blocks sub elements apart. */
static ATTR void NAME(from_lanes)(FT* dst, ptrdiff_t ds, const FT* src, ptrdiff_t sub, int nv,
                                  ptrdiff_t P)
{
    ptrdiff_t p;
    int l0, l;
    for (l0 = 0; l0 < nv; l0 += VL) {
        const FT* s = src + (l0 / VL) * sub;
        p = 0;
        if (l0 + VL <= nv)
            for (; p + VL <= P; p += VL)
                NAME(transpose_vl)(dst + l0 * ds + p, ds, s + p * VL, VL);
        for (; p < P; p++)
            for (l = 0; l < VL && l0 + l < nv; l++) dst[(l0 + l) * ds + p] = s[p * VL + l];
    }
}

/* One block of nv (<= BL) samples of P elements: from NCHW (rows P apart)
 * into the layout side by side when `to` (the lanes past nv zeroed), else
 * back. */
static ATTR void NAME(block_transpose)(FT* blk, FT* nchw, int nv, ptrdiff_t P, int to)
{
    if (to)
        NAME(to_lanes)(blk, P * VL, nchw, P, nv, P);
    else
        NAME(from_lanes)(nchw, P, blk, P * VL, nv, P);
}

/* Register tile of a correlation of blocks for one group of output maps (see
 * fastbp_tile_group): outputs 0 .. G-1, where the input maps in S feed all of
 * them (each input load feeds G multiply-adds; on the AVX-512 copy, side by
 * side, up to 5G for G <= 2: see the windows below) and, for G == 2, those
 * in A (B) feed only output 0 (1):
 *   out[g*ostride + r*VL + lane] = sum over the input maps i of output g of
 *       sum_{kh < nkh, kw < 5} wg[i*25 + kh*5 + kw] * src[i*pstride + (kh*rs + kw)*pu + r*VL + lane]
 * (+ bias[g] when bias is not NULL) for r < R, with wg = wb + g*wostride,
 * the source's rows rs positions apart, positions pu elements apart: R
 * consecutive outputs of a row of a sub-block (pu = VL), or R vectors of
 * consecutive outputs of one sample's wide rows (pu = 1; see conv_fwd_sample). R and G are compile-time constants
 * at each call site, so acc[][] lives in registers. Every output sums its
 * terms in the same order (input maps, then kh, then kw) whatever R and G.
 *
 * `edge` (a constant too) leaves out terms that read the 4 zero columns on
 * either side of a padded source row (dX's): with 1 the tile's first output
 * is the row's first (output r reads zeros for kw < 4 - r), with 2 its last
 * output is the row's last (zeros for kw >= R - r). A term left
 * out would add w * 0 (a zero) to the sum, which changes no value; on the
 * FMA paths a sum that an underflow left at -0 would have turned +0 (found
 * in an audit). */
#define FASTBP_ZERO_TERM(edge, r, kw, R) \
    (((edge) == 1 && (r) + (kw) < 4) || ((edge) == 2 && (r) + (kw) >= (R)))
/* Whether a tile of R outputs side by side reads its source's vector p (the
 * input of output r at kernel column kw = p - r) in some term that
 * FASTBP_ZERO_TERM keeps: the loads of a kernel row's window below are the
 * loads of the terms, each once. */
#define FASTBP_WINDOW_READS(edge, p, R) \
    ((edge) == 1 ? (p) >= 4 : (edge) == 2 ? (p) < (R) : 1)
#if GT >= 4
/* One kernel row (kh) of G (1 or 2) output maps' register tiles, side by
 * side: output r at column kw reads vector r + kw of the source row, so the
 * row's R + 4 vectors are loaded once and stay in registers for all five
 * columns (AVX-512: 2R accumulators, R + 4 inputs and G weights fit in 32).
 * acc[g][r] takes the terms FASTBP_ZERO_TERM keeps, kw in order. */
FB_INLINE ATTR void NAME(window_row)(VT (*acc)[FASTBP_RMAX], const int G, const int R,
                                     const FT* srow, const FT* k, ptrdiff_t wostride,
                                     int kh, const int edge)
{
    VT xr[FASTBP_RMAX + 4], wv[2];
    int r, g, kw;
#pragma GCC unroll 12
    for (r = 0; r < R + 4; r++)
        if (FASTBP_WINDOW_READS(edge, r, R))
            xr[r] = VLOADR(srow + r * VL);
#pragma GCC unroll 5
    for (kw = 0; kw < 5; kw++) {
        for (g = 0; g < G; g++) wv[g] = VSET1(k[g * wostride + kh * 5 + kw]);
#pragma GCC unroll 8
        for (r = 0; r < R; r++)
            if (!FASTBP_ZERO_TERM(edge, r, kw, R))
                for (g = 0; g < G; g++) acc[g][r] = VFMA(wv[g], xr[r + kw], acc[g][r]);
    }
}
#endif
FB_INLINE ATTR void NAME(tile_list1)(VT* acc, const int R, const FT* src, ptrdiff_t pstride,
                                     ptrdiff_t rs, ptrdiff_t pu, const int* lst, int nl,
                                     const FT* wb, const int nkh, const int edge)
{
    int r, j, kh, kw;
    for (j = 0; j < nl; j++) {
        const FT* s = src + lst[j] * pstride;
        const FT* k = wb + lst[j] * 25;
        for (kh = 0; kh < nkh; kh++) {
            const FT* srow = s + kh * rs * pu;
#if GT >= 4
            if (pu == VL) { /* acc is a row of chunk_core's acc[GT][FASTBP_RMAX] */
                NAME(window_row)((VT(*)[FASTBP_RMAX])acc, 1, R, srow, k, 0, kh, edge);
                continue;
            }
#endif
#pragma GCC unroll 5
            for (kw = 0; kw < 5; kw++) {
                const VT w0 = VSET1(k[kh * 5 + kw]);
#pragma GCC unroll 8
                for (r = 0; r < R; r++)
                    if (!FASTBP_ZERO_TERM(edge, r, kw, R))
                        acc[r] = VFMA(w0, VLOAD(srow + kw * pu + r * VL), acc[r]);
            }
        }
    }
}

FB_INLINE ATTR void NAME(chunk_core)(FT* out, ptrdiff_t ostride, const int R, const int G,
                                     const FT* src, ptrdiff_t pstride, ptrdiff_t rs,
                                     ptrdiff_t pu, const int* pool,
                                     const fastbp_tile_group* grp, const FT* wb,
                                     ptrdiff_t wostride, const int nkh, const FT* bias,
                                     const int edge)
{
    VT acc[GT][FASTBP_RMAX], wv[GT];
    int g, r, j, kh, kw;
    for (g = 0; g < G; g++)
        for (r = 0; r < R; r++) acc[g][r] = VSET1((FT)0);
    if (G >= 2) {
        const int* lst = pool + grp->s;
        for (j = 0; j < grp->ns; j++) {
            const FT* s = src + lst[j] * pstride;
            const FT* k = wb + lst[j] * 25;
            for (kh = 0; kh < nkh; kh++) {
                const FT* srow = s + kh * rs * pu;
#if GT >= 4
                if (G == 2 && pu == VL) {
                    NAME(window_row)(acc, 2, R, srow, k, wostride, kh, edge);
                    continue;
                }
#endif
#pragma GCC unroll 5
                for (kw = 0; kw < 5; kw++) {
                    for (g = 0; g < G; g++) wv[g] = VSET1(k[g * wostride + kh * 5 + kw]);
#pragma GCC unroll 8
                    for (r = 0; r < R; r++) {
                        if (FASTBP_ZERO_TERM(edge, r, kw, R))
                            continue;
                        const VT xv = VLOADR(srow + kw * pu + r * VL);
                        for (g = 0; g < G; g++) acc[g][r] = VFMA(wv[g], xv, acc[g][r]);
                    }
                }
            }
        }
        if (G == 2)
            NAME(tile_list1)(acc[1], R, src, pstride, rs, pu, pool + grp->b, grp->nb,
                             wb + wostride, nkh, edge);
    }
    if (G <= 2)
        NAME(tile_list1)(acc[0], R, src, pstride, rs, pu, pool + grp->a, grp->na, wb, nkh,
                         edge);
    for (g = 0; g < G; g++) {
        const VT vb = VSET1(bias != NULL ? bias[g] : (FT)0);
        for (r = 0; r < R; r++)
            VSTORE(out + g * ostride + r * VL, bias != NULL ? VADD(acc[g][r], vb) : acc[g][r]);
    }
}

#define FASTBP_CHUNK_N(G, RN)                                                             \
    static ATTR void NAME(chunk##G##_##RN)(FT* out, ptrdiff_t ostride, const FT* src,      \
                                           ptrdiff_t pstride, ptrdiff_t rs, ptrdiff_t pu,  \
                                           const int* pool, const fastbp_tile_group* grp,  \
                                           const FT* wb, ptrdiff_t wostride, int nkh,      \
                                           const FT* bias, int edge)                       \
    {                                                                                     \
        /* one sample's wide rows (conv_fwd_sample) in a copy of their own, pu a      \
         * constant: the side-by-side windows' registers must not crowd them */        \
        if (pu == 1 && edge == 0 && nkh == 5)                                             \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, rs, 1, pool, grp, wb,      \
                             wostride, 5, bias, 0);                                       \
        else if (edge == 1)                                                               \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, rs, pu, pool, grp, wb,     \
                             wostride, nkh, bias, 1);                                     \
        else if (edge == 2)                                                               \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, rs, pu, pool, grp, wb,     \
                             wostride, nkh, bias, 2);                                     \
        else if (nkh == 5) /* a constant bound: the usual, faster loop */                 \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, rs, pu, pool, grp, wb,     \
                             wostride, 5, bias, 0);                                       \
        else                                                                              \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, rs, pu, pool, grp, wb,     \
                             wostride, nkh, bias, 0);                                     \
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
#if GT >= 4
FASTBP_CHUNK_N(4, 1)
FASTBP_CHUNK_N(4, 2)
FASTBP_CHUNK_N(4, 3)
FASTBP_CHUNK_N(4, 4)
FASTBP_CHUNK_N(4, 5)
FASTBP_CHUNK_N(4, 6)
#endif
#undef FASTBP_CHUNK_N

/* One output row of the correlation (see chunk_core) for the output maps of
 * grp: T[g*tstride + x*VL] for x < ncol vectors, in register tiles balanced
 * so that none is much shorter. src: the first kernel row's source row (kernel rows
 * kh0 .. kh1 - 1 of the weights are used); weights of (output grp->o + g,
 * input i): wbase + (grp->o + g)*wostride + i*25; biases (or NULL): bias[grp->o + g]. */
static ATTR void NAME(correlate_row)(FT* T, ptrdiff_t tstride, int ncol, const FT* src,
                                     ptrdiff_t pstride, ptrdiff_t rs, ptrdiff_t pu,
                                     const int* pool,
                                     const fastbp_tile_group* grp, const FT* wbase,
                                     ptrdiff_t wostride, int kh0, int kh1, const FT* bias,
                                     int padded)
{
    /* G == 4 keeps the tiles of G == 2 */
    const int G = grp->G, rmax = G == 1 ? 8 : 6, nkh = kh1 - kh0;
    const FT* wb = wbase + grp->o * wostride + kh0 * 5;
    const FT* gbias = bias != NULL ? bias + grp->o : NULL;
    int nch, base, extra, c, x0 = 0;
    if (ncol <= 0 || nkh <= 0)
        return;
    nch = (ncol + rmax - 1) / rmax;
    base = ncol / nch;
    extra = ncol % nch;
    for (c = 0; c < nch; c++) {
        const int R = base + (c < extra);
        /* a tile at both ends (a row of a few outputs) leaves out the left's */
        const int edge = !padded ? 0 : x0 == 0 ? 1 : x0 + R == ncol ? 2 : 0;
        FT* out = T + x0 * VL;
        const FT* s = src + x0 * VL;
#define FASTBP_CASE(GG, RN)                                                              \
    case RN:                                                                             \
        NAME(chunk##GG##_##RN)(out, tstride, s, pstride, rs, pu, pool, grp, wb, wostride,  \
                               nkh, gbias, edge);                                         \
        break;
        if (G == 1) {
            switch (R) {
                FASTBP_CASE(1, 1) FASTBP_CASE(1, 2) FASTBP_CASE(1, 3) FASTBP_CASE(1, 4)
                FASTBP_CASE(1, 5) FASTBP_CASE(1, 6) FASTBP_CASE(1, 7) FASTBP_CASE(1, 8)
            }
        } else if (G == 2) {
            switch (R) {
                FASTBP_CASE(2, 1) FASTBP_CASE(2, 2) FASTBP_CASE(2, 3)
                FASTBP_CASE(2, 4) FASTBP_CASE(2, 5) FASTBP_CASE(2, 6)
            }
        }
#if GT >= 4
        else {
            switch (R) {
                FASTBP_CASE(4, 1) FASTBP_CASE(4, 2) FASTBP_CASE(4, 3)
                FASTBP_CASE(4, 4) FASTBP_CASE(4, 5) FASTBP_CASE(4, 6)
            }
        }
#endif
#undef FASTBP_CASE
        x0 += R;
    }
}

/* Weight-gradient terms of G (1, 2 or 4) pairs (o_g, i) that share the
 * input map x, for kernel row kh, over one sub-block:
 *   gp[g][(kh*5 + kw)*VL + lane] = sum over y < ho, x < wo (in that order) of
 *       dz[g][(y*wo + x)*VL + lane] * x[((y + kh)*w + x + kw)*VL + lane].
 * G*5 accumulators stay in registers; each x load feeds G multiply-adds, or
 * 5G on the AVX-512 copy, where it stays in registers for five positions. */
FB_INLINE ATTR void NAME(gw_core)(FT* const* gp, const FT* const* dz, const FT* x, int w,
                                  int ho, int wo, int kh, const int G)
{
    VT a[GT][5], d[GT];
    int g, kw, y, c;
    for (g = 0; g < G; g++)
        for (kw = 0; kw < 5; kw++) a[g][kw] = VSET1((FT)0);
    for (y = 0; y < ho; y++) {
        const FT* xrow = x + (ptrdiff_t)(y + kh) * w * VL;
        const ptrdiff_t drow = (ptrdiff_t)y * wo * VL;
#if GT >= 4
        /* x[c + kw] for kw < 5 slide along the row in registers: one load
         * a position where there were five */
        VT xw[5];
        for (kw = 0; kw < 4; kw++) xw[kw] = VLOAD(xrow + kw * VL);
        for (c = 0; c < wo; c++) {
            xw[4] = VLOAD(xrow + (c + 4) * VL);
            for (g = 0; g < G; g++) d[g] = VLOAD(dz[g] + drow + c * VL);
            for (kw = 0; kw < 5; kw++)
                for (g = 0; g < G; g++) a[g][kw] = VFMA(d[g], xw[kw], a[g][kw]);
            for (kw = 0; kw < 4; kw++) xw[kw] = xw[kw + 1];
        }
#else
        for (c = 0; c < wo; c++) {
            const FT* xv = xrow + c * VL;
            for (g = 0; g < G; g++) d[g] = VLOAD(dz[g] + drow + c * VL);
            for (kw = 0; kw < 5; kw++) {
                const VT xk = VLOADR(xv + kw * VL);
                for (g = 0; g < G; g++) a[g][kw] = VFMA(d[g], xk, a[g][kw]);
            }
        }
#endif
    }
    for (g = 0; g < G; g++)
        for (kw = 0; kw < 5; kw++) VSTORE(gp[g] + (kh * 5 + kw) * VL, a[g][kw]);
}

#define FASTBP_GW_N(G)                                                                    \
    static ATTR void NAME(gw##G)(FT* const* gp, const FT* const* dz, const FT* x, int w,  \
                                 int ho, int wo)                                          \
    {                                                                                     \
        int kh;                                                                           \
        for (kh = 0; kh < 5; kh++) NAME(gw_core)(gp, dz, x, w, ho, wo, kh, G);            \
    }
FASTBP_GW_N(1)
FASTBP_GW_N(2)
#if GT >= 4
FASTBP_GW_N(4)
#endif
#undef FASTBP_GW_N

/* Forward pass of sample i alone, output maps of the groups [k0, k1): a
 * sub-block with few samples costs as much as a full one, so a block's last
 * few samples run here. The wide rows: the correlation of the flattened
 * plane, out[p] = sum_{kh,kw} k[kh][kw] * in[p + kh*w + kw] for p = y*w + x,
 * VL consecutive p to a vector; the columns x >= w - 4 are dropped. Every
 * output sums the same terms in the same order as in a block. T: GT wide
 * planes tstride >= h*w + VL apart. Reads up to VL - 1 elements past a
 * plane: the last sample of X is read from a zero-padded copy. */
static ATTR void NAME(conv_fwd_sample)(const ARGS(conv_fwd_args)* a, int i, int k0, int k1,
                                       FT* T, ptrdiff_t tstride)
{
    const int c_in = a->c_in, c_out = a->c_out, w = a->w, ho = a->h - 4, wo = a->w - 4;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)ho * wo;
    const int nvw = ((ho - 1) * w + wo + VL - 1) / VL; /* vectors of a wide plane */
    const FT* x = (i == a->n - 1) ? a->xlast : a->X + (ptrdiff_t)i * c_in * plane;
    FT* y = a->Y + (ptrdiff_t)i * c_out * oplane;
    int k, g, r;
    for (k = k0; k < k1; k++) {
        const fastbp_tile_group* grp = a->groups + k;
        NAME(correlate_row)(T, tstride, nvw, x, plane, w, 1, a->pool, grp, a->W,
                            (ptrdiff_t)c_in * 25, 0, 5, a->b, 0);
        for (g = 0; g < grp->G; g++)
            for (r = 0; r < ho; r++)
                memcpy(y + (grp->o + g) * oplane + r * wo, T + g * tstride + r * w,
                       sizeof(FT) * wo);
        EW(fastbp_act)(y + grp->o * oplane, y + grp->o * oplane, NULL, grp->G * oplane, a->act);
    }
}

/* Forward pass of samples [i0, i1) (at most BL), output maps of the groups
 * [k0, k1). scratch: the block's X (c_in*h*w*BL elements), then a tile's
 * maps (GT*(h-4)*(w-4)*BL), each in sub-blocks; an X or Y side by side
 * (a->layout) is read or written in place instead. With both in NCHW, a
 * last sub-block of fewer than 3/4 VL samples runs one sample at a time
 * (conv_fwd_sample). */
static ATTR void NAME(conv_fwd_block)(const ARGS(conv_fwd_args)* a, int i0, int i1, int k0,
                                      int k1, FT* scratch)
{
    const int c_in = a->c_in, c_out = a->c_out, w = a->w, ho = a->h - 4, wo = a->w - 4;
    const int x_blk = a->layout & FASTBP_BLOCKED_IN, y_blk = a->layout & FASTBP_BLOCKED_OUT;
    const int tail = (i1 - i0) % VL;
    const int nv = a->layout || 4 * tail >= 3 * VL ? i1 - i0 : i1 - i0 - tail;
    const int nsub = (nv + VL - 1) / VL;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)ho * wo;
    const ptrdiff_t xs = c_in * plane * VL; /* sub-block strides */
    const ptrdiff_t ts = (y_blk ? c_out : GT) * oplane * VL;
    const FT* const xt = x_blk ? a->X + (ptrdiff_t)i0 * c_in * plane : scratch;
    FT* const T = y_blk ? a->Y + (ptrdiff_t)i0 * c_out * oplane : scratch + c_in * plane * BL;
    FT* const y = a->Y + (ptrdiff_t)i0 * c_out * oplane;
    int k, g, s, r, i;
    for (i = i0 + nv; i < i1; i++)
        NAME(conv_fwd_sample)(a, i, k0, k1, scratch, plane + 2 * BL);
    if (nv == 0)
        return;
    if (!x_blk)
        NAME(to_lanes)(scratch, xs, a->X + (ptrdiff_t)i0 * c_in * plane, c_in * plane, nv,
                       c_in * plane);
    for (k = k0; k < k1; k++) {
        const fastbp_tile_group* grp = a->groups + k;
        FT* const tg = T + (y_blk ? grp->o * oplane * VL : 0); /* the tile's first map */
        for (s = 0; s < nsub; s++) {
            for (r = 0; r < ho; r++)
                NAME(correlate_row)(tg + s * ts + r * wo * VL, oplane * VL, wo,
                                    xt + s * xs + r * w * VL, plane * VL, w, VL, a->pool,
                                    grp, a->W, (ptrdiff_t)c_in * 25, 0, 5, a->b, 0);
            /* the activation while the tile's maps are in cache */
            EW(fastbp_act)(tg + s * ts, tg + s * ts, NULL, grp->G * oplane * VL, a->act);
        }
        if (!y_blk)
            for (g = 0; g < grp->G; g++)
                NAME(from_lanes)(y + (grp->o + g) * oplane, c_out * oplane,
                                 T + g * oplane * VL, ts, nv, oplane);
    }
}

/* Backward pass of samples [i0, i1) (at most BL), share `share` of nsplit:
 * the input maps [c0, c1) = [share*c_in/nsplit, (share+1)*c_in/nsplit).
 * Writes dX of those samples (if wanted) for the tile groups that start in
 * [c0, c1), and part's entries of the share: [grad_W of the connected
 * pairs (npairs, 25) whose input map is in [c0, c1), grad_b (c_out) for
 * share 0], summed over the block: per sample (a lane each), then over the
 * samples in order. scratch, each in sub-blocks: the block's X
 * (c_in*h*w*BL elements) and dZ (c_out*(h-4)*(w-4)*BL), copied there from
 * NCHW (side by side, a->layout, they are read in place), the per-sample sums
 * ((npairs*25 + c_out)*BL), and for dX the padded dZ (c_out*(h-4)*(w+4)*BL)
 * and a tile's maps (GT*h*w*BL; side by side, dX is written in place). */
/* out[p] = the sum of the nv lanes of element p of a block's sub-blocks (gs
 * elements apart), lane 0 first and then in order, for p < count: element p
 * of sub-block s is g[s*gs + p*VL .. + VL). VL elements at a time are
 * transposed in registers, so that each lane's terms add as vectors, one
 * element per lane: the same additions in the same order as one element at
 * a time (and the same sums on every path). */
static ATTR void NAME(lane_sums)(FT* out, const FT* g, ptrdiff_t gs, int nv, ptrdiff_t count)
{
    FT rows[VL * VL], cols[VL * VL];
    ptrdiff_t p0;
    int s, l, r;
    memset(rows, 0, sizeof rows);
    for (p0 = 0; p0 < count; p0 += VL) {
        const int n = count - p0 < VL ? (int)(count - p0) : VL;
        VT sum = VSET1((FT)0);
        for (s = 0; s * VL < nv; s++) {
            const FT* src = g + s * gs + p0 * VL;
            if (n < VL) { /* the last few elements: their rows alone, zeros after */
                memcpy(rows, src, sizeof(FT) * n * VL);
                src = rows;
            }
            NAME(transpose_vl)(cols, VL, src, VL);
            for (l = 0; l < VL && s * VL + l < nv; l++)
                sum = s == 0 && l == 0 ? VLOAD(cols) : VADD(sum, VLOAD(cols + l * VL));
        }
        if (n == VL) {
            VSTORE(out + p0, sum);
        } else {
            VSTORE(cols, sum);
            for (r = 0; r < n; r++) out[p0 + r] = cols[r];
        }
    }
}

static ATTR void NAME(conv_bwd_block)(const ARGS(conv_bwd_args)* a, int i0, int i1,
                                      int share, int nsplit, FT* scratch, FT* part)
{
    const int c_in = a->c_in, c_out = a->c_out, h = a->h, w = a->w, ho = h - 4, wo = w - 4;
    const int x_blk = a->layout & FASTBP_BLOCKED_IN, z_blk = a->layout & FASTBP_BLOCKED_OUT;
    const int nv = i1 - i0, nsub = (nv + VL - 1) / VL;
    const ptrdiff_t plane = (ptrdiff_t)h * w, oplane = (ptrdiff_t)ho * wo;
    const ptrdiff_t ng = (ptrdiff_t)a->npairs * 25, prow = w + 4; /* dZ rows, padded */
    /* sub-block strides */
    const ptrdiff_t xs = c_in * plane * VL, ds = c_out * oplane * VL, gs = (ng + c_out) * VL;
    const ptrdiff_t ps = c_out * ho * prow * VL, ts = (x_blk ? c_in : GT) * plane * VL;
    FT* const xw = scratch;
    FT* const dzw = xw + c_in * plane * BL;
    const FT* const xt = x_blk ? a->X + (ptrdiff_t)i0 * c_in * plane : xw;
    const FT* const dzt = z_blk ? a->dZ + (ptrdiff_t)i0 * c_out * oplane : dzw;
    FT* const gacc = dzw + c_out * oplane * BL;
    FT* const dzp = gacc + (ng + c_out) * BL;
    FT* const T = x_blk && a->dX != NULL ? a->dX + (ptrdiff_t)i0 * c_in * plane
                                         : dzp + c_out * ho * prow * BL;
    const int c0 = share * c_in / nsplit, c1 = (share + 1) * c_in / nsplit;
    int co, ci, k, r, g, s, t, kg0, kg1, xe;
    ptrdiff_t p;

    /* the tile groups of dX that start in [c0, c1), and the input maps they
     * cover: X is needed for [c0, xe) */
    for (kg0 = 0; kg0 < a->ngroups && a->groups[kg0].o < c0; kg0++) {
    }
    for (kg1 = kg0; kg1 < a->ngroups && a->groups[kg1].o < c1; kg1++) {
    }
    xe = c1;
    if (a->dX != NULL && kg1 > kg0 && a->groups[kg1 - 1].o + a->groups[kg1 - 1].G > xe)
        xe = a->groups[kg1 - 1].o + a->groups[kg1 - 1].G;
    if (!x_blk)
        NAME(to_lanes)(xw + c0 * plane * VL, xs, a->X + ((ptrdiff_t)i0 * c_in + c0) * plane,
                       c_in * plane, nv, (xe - c0) * plane);
    if (!z_blk)
        NAME(to_lanes)(dzw, ds, a->dZ + (ptrdiff_t)i0 * c_out * oplane, c_out * oplane, nv,
                       c_out * oplane);
    for (s = 0; s < nsub; s++) {
        FT* const gsub = gacc + s * gs;
        /* grad_b: 4 interleaved sums over the positions, then a fixed tree */
        for (co = 0; co < (share == 0 ? c_out : 0); co++) {
            const FT* d = dzt + s * ds + co * oplane * VL;
            VT t[4];
            for (k = 0; k < 4; k++) t[k] = VSET1((FT)0);
            for (p = 0; p + 4 <= oplane; p += 4)
                for (k = 0; k < 4; k++) t[k] = VADD(t[k], VLOAD(d + (p + k) * VL));
            for (k = 0; p < oplane; p++, k++) t[k] = VADD(t[k], VLOAD(d + p * VL));
            VSTORE(gsub + (ng + co) * VL, VADD(VADD(t[0], t[1]), VADD(t[2], t[3])));
        }
        /* grad_W: the output maps of input map ci, GT at a time (then 2, 1) */
        for (ci = c0; ci < c1; ci++) {
            const int* lst = a->blist + (ptrdiff_t)ci * c_out;
            const FT* xsrc = xt + s * xs + ci * plane * VL;
            for (k = 0; k < a->bn[ci];) {
                FT* gp[GT];
                const FT* dzg[GT];
                const int gn = a->bn[ci] - k >= GT ? GT : a->bn[ci] - k >= 2 ? 2 : 1;
                for (t = 0; t < gn; t++) {
                    const int o = lst[k + t];
                    gp[t] = gsub + (ptrdiff_t)a->pid[o * c_in + ci] * 25 * VL;
                    dzg[t] = dzt + s * ds + o * oplane * VL;
                }
#if GT >= 4
                if (gn == 4)
                    NAME(gw4)(gp, dzg, xsrc, w, ho, wo);
                else
#endif
                if (gn == 2)
                    NAME(gw2)(gp, dzg, xsrc, w, ho, wo);
                else
                    NAME(gw1)(gp, dzg, xsrc, w, ho, wo);
                k += gn;
            }
        }
    }
    for (ci = c0; ci <= c1; ci++) /* the share's pairs; c1: the biases */
        for (t = 0; t < (ci < c1 ? a->bn[ci] : share == 0 ? 1 : 0); t++) {
            const ptrdiff_t first = ci < c1 ? a->pid[a->blist[ci * c_out + t] * c_in + ci] * 25
                                            : ng;
            NAME(lane_sums)(part + first, gacc + first * VL, gs, nv, ci < c1 ? 25 : c_out);
        }
    if (a->dX == NULL)
        return;
    /* dX = full convolution of dZ with the rotated kernels: dZ's rows with 4
     * zero columns on each side; kernel rows that would read rows outside
     * dZ are skipped (they add only zeros). */
    if (kg1 == kg0)
        return;
    /* vector by vector: memset and memcpy of rows this short (LeNet's C3:
     * 4 + 10 + 4 vectors) spent more in starting `rep stos` than in storing */
    for (s = 0; s < nsub; s++)
        for (co = 0; co < c_out; co++)
            for (r = 0; r < ho; r++) {
                FT* row = dzp + s * ps + ((ptrdiff_t)co * ho + r) * prow * VL;
                const FT* dzrow = dzt + s * ds + ((ptrdiff_t)co * oplane + r * wo) * VL;
                for (t = 0; t < 4; t++) {
                    VSTORE(row + t * VL, VSET1((FT)0));
                    VSTORE(row + (4 + wo + t) * VL, VSET1((FT)0));
                }
                for (t = 0; t < wo; t++) VSTORE(row + (4 + t) * VL, VLOAD(dzrow + t * VL));
            }
    for (k = kg0; k < kg1; k++) {
        const fastbp_tile_group* grp = a->groups + k;
        FT* const tk = T + (x_blk ? grp->o * plane * VL : 0); /* the tile's first map */
        for (s = 0; s < nsub; s++) {
            for (r = 0; r < h; r++) {
                /* kernel row kh reads dZ row r - 4 + kh */
                const int kh0 = r < 4 ? 4 - r : 0, kh1 = r + 1 > ho ? ho + 4 - r : 5;
                NAME(correlate_row)(tk + s * ts + r * w * VL, plane * VL, w,
                                    dzp + s * ps + (r - 4 + kh0) * prow * VL, ho * prow * VL,
                                    prow, VL, a->pool, grp, a->wrot, (ptrdiff_t)c_out * 25,
                                    kh0, kh1, NULL, 1);
            }
            /* times the input activation's derivative, X side by side too */
            for (g = 0; g < grp->G; g++) {
                FT* const tg = tk + s * ts + g * plane * VL;
                EW(fastbp_dact)(tg, tg, NULL, xt + s * xs + (grp->o + g) * plane * VL,
                                plane * VL, a->act);
            }
        }
        for (g = 0; g < (x_blk ? 0 : grp->G); g++)
            NAME(from_lanes)(a->dX + (ptrdiff_t)i0 * c_in * plane + (grp->o + g) * plane,
                             c_in * plane, T + g * plane * VL, ts, nv, plane);
    }
}

/* Sums of the 2x2 blocks of rows y0, y1 (each 2*w2 long) at outputs c0 ..
 * c0 + n: (y0[2c] + y0[2c + 1]) + (y1[2c] + y1[2c + 1]). */
FB_INLINE ATTR VT NAME(block_sums_n)(const FT* y0, const FT* y1, int c0, int n)
{
    return VADD(NAME(pair_sums_n)(y0 + 2 * c0, n), NAME(pair_sums_n)(y1 + 2 * c0, n));
}

/* Pooling forward of one sample. */
static ATTR void NAME(pool_fwd_sample)(const ARGS(pool_args)* a, int i)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    FT* xs = a->X + (ptrdiff_t)i * a->c * oplane;
    int ch, r, c0;
    for (ch = 0; ch < a->c; ch++) {
        const FT* y = a->Y + ((ptrdiff_t)i * a->c + ch) * plane;
        FT* x = xs + ch * oplane;
        const VT k = VSET1(a->coef[ch] * (FT)0.25), bias = VSET1(a->bias[ch]);
        for (r = 0; r < h2; r++)
            for (c0 = 0; c0 < w2; c0 += VL) {
                const int n = w2 - c0 < VL ? w2 - c0 : VL;
                const VT s = NAME(block_sums_n)(y + 2 * r * w, y + (2 * r + 1) * w, c0, n);
                NAME(store_n)(x + r * w2 + c0, VFMA(k, s, bias), n);
            }
    }
    EW(fastbp_act)(xs, xs, NULL, a->c * oplane, a->act); /* one pass over the sample */
}

/* Pooling backward of samples [i0, i1) (at most BL), NCHW: dY of those
 * samples (if wanted) and part = [grad_coef (c), grad_bias (c)] over the
 * block. T: c*h*w elements. Each sample's sums run per column of the pooled
 * plane (a lane each, over the rows in order), then over the columns in
 * order; the block's sums add the samples' in order. pool_bwd_lanes sums in
 * the same order, so both layouts give the same bits on each path
 * (grad_coef's terms are multiply-adds: fused on the AVX copies, not on the
 * portable one). */
static ATTR void NAME(pool_bwd_block)(const ARGS(pool_args)* a, int i0, int i1, FT* T,
                                      FT* part)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    const VT quarter = VSET1((FT)0.25);
    FT* const E = T;
    FT col[2 * VL];
    int i, ch, r, c0, c;
    for (ch = 0; ch < 2 * a->c; ch++) part[ch] = 0;
    for (i = i0; i < i1; i++) {
        for (ch = 0; ch < a->c; ch++) {
            const ptrdiff_t off = (ptrdiff_t)i * a->c + ch;
            const FT* y = a->Y + off * plane;
            const FT* dz = a->dZ + off * oplane;
            const VT k = VSET1(a->coef[ch] * (FT)0.25);
            FT sc_i = 0, sb_i = 0;
            for (c0 = 0; c0 < w2; c0 += VL) {
                const int n = w2 - c0 < VL ? w2 - c0 : VL;
                /* dz times the mean of each block: grad_coef's terms */
                VT sc = VSET1((FT)0), sb = VSET1((FT)0);
                for (r = 0; r < h2; r++) {
                    const VT s = NAME(block_sums_n)(y + 2 * r * w, y + (2 * r + 1) * w, c0, n);
                    const VT d = NAME(load_n)(dz + r * w2 + c0, n);
                    sc = VFMA(d, VMUL(quarter, s), sc);
                    sb = VADD(sb, d);
                    if (a->dY != NULL) {
                        /* E[2r + {0, 1}, 2c + {0, 1}] = k dz[r, c]; one pass of the
                         * activation table's derivative then covers the sample. */
                        FT* e0 = E + ch * plane + 2 * r * w + 2 * c0;
                        const VT kd = VMUL(k, d);
                        NAME(store_twice_n)(e0, kd, n);
                        NAME(store_twice_n)(e0 + w, kd, n);
                    }
                }
                VSTORE(col, sc);
                VSTORE(col + VL, sb);
                for (c = 0; c < n; c++) {
                    sc_i += col[c];
                    sb_i += col[VL + c];
                }
            }
            part[ch] += sc_i;
            part[a->c + ch] += sb_i;
        }
        if (a->dY != NULL) {
            const ptrdiff_t first = (ptrdiff_t)i * a->c * plane;
            EW(fastbp_dact)(a->dY + first, E, NULL, a->Y + first, a->c * plane, a->act);
        }
    }
}

/* Side by side, the sums of the 2x2 blocks whose top left is at y in rows
 * of w positions: (y[0] + y[1]) + (y[w] + y[w + 1]), as block_sums_n. */
FB_INLINE ATTR VT NAME(quad_sums)(const FT* y, int w)
{
    return VADD(VADD(VLOAD(y), VLOAD(y + VL)), VADD(VLOAD(y + w * VL), VLOAD(y + (w + 1) * VL)));
}

/* Pooling forward of samples [i0, i1) (one block of BL) with Y side by side
 * (a->layout): the same operations as pool_fwd_sample on each lane. X is
 * written side by side too (FASTBP_BLOCKED_OUT), or else through T
 * (c*(h/2)*(w/2)*BL elements) into NCHW. */
static ATTR void NAME(pool_fwd_lanes)(const ARGS(pool_args)* a, int i0, int i1, FT* T)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w, c = a->c;
    const int nv = i1 - i0, nsub = (nv + VL - 1) / VL;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    const ptrdiff_t ys = c * plane * VL, xs = c * oplane * VL;
    const FT* const yb = a->Y + (ptrdiff_t)i0 * c * plane;
    FT* const xb = (a->layout & FASTBP_BLOCKED_OUT) ? a->X + (ptrdiff_t)i0 * c * oplane : T;
    int s, ch, r, x;
    for (s = 0; s < nsub; s++) {
        for (ch = 0; ch < c; ch++) {
            const FT* y = yb + s * ys + ch * plane * VL;
            FT* out = xb + s * xs + ch * oplane * VL;
            const VT k = VSET1(a->coef[ch] * (FT)0.25), bias = VSET1(a->bias[ch]);
            for (r = 0; r < h2; r++)
                for (x = 0; x < w2; x++) {
                    const VT sv = NAME(quad_sums)(y + (2 * r * w + 2 * x) * VL, w);
                    VSTORE(out + (r * w2 + x) * VL, VFMA(k, sv, bias));
                }
        }
        EW(fastbp_act)(xb + s * xs, xb + s * xs, NULL, c * oplane * VL, a->act);
    }
    if (!(a->layout & FASTBP_BLOCKED_OUT))
        NAME(from_lanes)(a->X + (ptrdiff_t)i0 * c * oplane, c * oplane, T, xs, nv, c * oplane);
}

/* Pooling backward of samples [i0, i1) (one block of BL) with Y and dY side
 * by side: pool_bwd_block's sums and dY, each lane a sample. dZ is side by
 * side too (FASTBP_BLOCKED_OUT), or else copied so into T. T: the samples'
 * sums (2*c*BL elements), then dZ (c*(h/2)*(w/2)*BL). Each column's sums
 * stay in registers over its rows, FASTBP_POOL_COLS columns at a time. */
#define FASTBP_POOL_COLS 4
static ATTR void NAME(pool_bwd_lanes)(const ARGS(pool_args)* a, int i0, int i1, FT* T,
                                      FT* part)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w, c = a->c;
    const int nv = i1 - i0, nsub = (nv + VL - 1) / VL;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    const ptrdiff_t ys = c * plane * VL, zs = c * oplane * VL;
    const VT quarter = VSET1((FT)0.25);
    const FT* const yb = a->Y + (ptrdiff_t)i0 * c * plane;
    FT* const sums = T; /* (nsub, 2c, VL) */
    FT* const zw = sums + 2 * c * BL;
    const FT* const zb = (a->layout & FASTBP_BLOCKED_OUT) ? a->dZ + (ptrdiff_t)i0 * c * oplane
                                                          : zw;
    FT* const dyb = a->dY != NULL ? a->dY + (ptrdiff_t)i0 * c * plane : NULL;
    int s, ch, r, x0, x, l;
    if (!(a->layout & FASTBP_BLOCKED_OUT))
        NAME(to_lanes)(zw, zs, a->dZ + (ptrdiff_t)i0 * c * oplane, c * oplane, nv, c * oplane);
    for (s = 0; s < nsub; s++)
        for (ch = 0; ch < c; ch++) {
            const FT* y = yb + s * ys + ch * plane * VL;
            const FT* dz = zb + s * zs + ch * oplane * VL;
            FT* const dy = dyb != NULL ? dyb + s * ys + ch * plane * VL : NULL;
            const VT k = VSET1(a->coef[ch] * (FT)0.25);
            VT sc = VSET1((FT)0), sb = VSET1((FT)0);
            for (x0 = 0; x0 < w2; x0 += FASTBP_POOL_COLS) {
                const int nx = w2 - x0 < FASTBP_POOL_COLS ? w2 - x0 : FASTBP_POOL_COLS;
                VT cc[FASTBP_POOL_COLS], cb[FASTBP_POOL_COLS];
                for (x = 0; x < FASTBP_POOL_COLS; x++) cc[x] = cb[x] = VSET1((FT)0);
                for (r = 0; r < h2; r++)
                    for (x = 0; x < nx; x++) {
                        const ptrdiff_t p0 = (2 * r * w + 2 * (x0 + x)) * VL;
                        const VT sv = NAME(quad_sums)(y + p0, w);
                        const VT d = VLOAD(dz + (r * w2 + x0 + x) * VL);
                        cc[x] = VFMA(d, VMUL(quarter, sv), cc[x]);
                        cb[x] = VADD(cb[x], d);
                        if (dy != NULL) {
                            const VT kd = VMUL(k, d);
                            VSTORE(dy + p0, kd);
                            VSTORE(dy + p0 + VL, kd);
                            VSTORE(dy + p0 + w * VL, kd);
                            VSTORE(dy + p0 + (w + 1) * VL, kd);
                        }
                    }
                for (x = 0; x < nx; x++) {
                    sc = VADD(sc, cc[x]);
                    sb = VADD(sb, cb[x]);
                }
            }
            VSTORE(sums + (s * 2 * c + ch) * VL, sc);
            VSTORE(sums + (s * 2 * c + c + ch) * VL, sb);
            /* the derivative while the channel is in cache */
            if (dy != NULL)
                EW(fastbp_dact)(dy, dy, NULL, y, plane * VL, a->act);
        }
    for (ch = 0; ch < 2 * c; ch++) {
        FT sum = 0;
        for (l = 0; l < nv; l++) sum += sums[((l / VL) * 2 * c + ch) * VL + l % VL];
        part[ch] = sum;
    }
}
#undef FASTBP_POOL_COLS

#undef FASTBP_ZERO_TERM
#undef FASTBP_WINDOW_READS
#undef GT
#undef BL
#include "fb_lanes_undef.h"
