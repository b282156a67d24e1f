/* Template of conv.c's kernels for one (dtype, instruction set) pair; conv.c
 * includes it once per pair (no include guard), after defining
 * FB_LANES_F32 (1 float, 0 double) and FB_LANES_ISA (an FB_LEVEL_* of
 * fb_dispatch.h). fb_lanes.h turns those into FT, NAME(x) (this copy's
 * name for x), ATTR (its target attribute) and the lane operations: VT holds
 * VL lanes of FT. The algorithms are described at the top of conv.c.
 */
#include "fb_lanes.h"

/* Output maps of this copy's tiles (conv.c's FASTBP_TILE_GMAX): 2, or 4
 * where there are 32 vector registers. */
#define GT FASTBP_TILE_GMAX(FB_LANES_ISA)

/* Sum in a fixed order (8 interleaved partial sums, then a fixed tree). */
FB_INLINE ATTR FT NAME(sum_fixed)(const FT* p, ptrdiff_t n)
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

/* ---- partial vectors: rows of any width, VL elements at a time ----
 * The lanes beyond n of a partial vector are zero on loads and left alone on
 * stores (masked where the instruction set has masks), so a row of any width
 * is covered without reading or writing past it: pooling's rows, and the
 * backward passes' copies of short rows (inline, no libc call a row). */
#if FB_LANES_ISA == FB_LEVEL_AVX512
#if FB_LANES_F32
#define FASTBP_MASK(n) ((__mmask16)((1u << (n)) - 1u))
typedef int NAME(index_t); /* a permute index: as wide as a lane */
#else
#define FASTBP_MASK(n) ((__mmask8)((1u << (n)) - 1u))
typedef long long NAME(index_t);
#endif
FB_INLINE ATTR VT NAME(load_n)(const FT* p, int n) { return FASTBP_LANE(maskz_loadu)(FASTBP_MASK(n), p); }
FB_INLINE ATTR void NAME(store_n)(FT* p, VT v, int n) { FASTBP_LANE(mask_storeu)(p, FASTBP_MASK(n), v); }
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
#undef FASTBP_MASK

#elif FB_LANES_ISA == FB_LEVEL_AVX2
/* maskload/maskstore take a vector of lane masks: the first n of VL. */
#if FB_LANES_F32
static const int NAME(lane_masks)[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#define FASTBP_CAST_PD(v) _mm256_castps_pd(v)
#define FASTBP_CAST_FT(v) _mm256_castpd_ps(v)
#else
static const long long NAME(lane_masks)[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#define FASTBP_CAST_PD(v) (v)
#define FASTBP_CAST_FT(v) (v)
#endif
#define FASTBP_MASK(n) _mm256_loadu_si256((const __m256i*)(NAME(lane_masks) + VL - (n)))
FB_INLINE ATTR VT NAME(load_n)(const FT* p, int n) { return FASTBP_LANE(maskload)(p, FASTBP_MASK(n)); }
FB_INLINE ATTR void NAME(store_n)(FT* p, VT v, int n) { FASTBP_LANE(maskstore)(p, FASTBP_MASK(n), v); }
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
#undef FASTBP_MASK
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
FB_INLINE ATTR VT NAME(load_n)(const FT* p, int n)
{
    FT t[VL];
    int l;
    if (n == VL)
        return VLOAD(p);
    for (l = 0; l < VL; l++) t[l] = l < n ? p[l] : (FT)0;
    return VLOAD(t);
}
FB_INLINE ATTR void NAME(store_n)(FT* p, VT v, int n)
{
    FT t[VL];
    int l;
    if (n == VL) {
        VSTORE(p, v);
        return;
    }
    VSTORE(t, v);
    for (l = 0; l < n; l++) p[l] = t[l];
}
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

/* dst[0 .. n) = src[0 .. n), a vector at a time. */
FB_INLINE ATTR void NAME(copy_row)(FT* dst, const FT* src, int n)
{
    int c0;
    for (c0 = 0; c0 < n; c0 += VL) {
        const int k = n - c0 < VL ? n - c0 : VL;
        NAME(store_n)(dst + c0, NAME(load_n)(src + c0, k), k);
    }
}

/* Register tile of the wide correlation for one group of output maps (see
 * fastbp_tile_group): outputs 0 .. G-1, where the input maps in S feed all of
 * them (each input load feeds G multiply-adds) and, for G == 2, those in A
 * (B) feed only output 0 (1):
 *   out[g*ostride + r*VL + lane] = sum over the input maps i of output g of
 *       sum_{kh,kw} wg[i*25 + kh*5 + kw] * src[i*pstride + kh*w + kw + r*VL + lane]
 * for r < R, with wg = wb + g*wostride. R and G are compile-time constants at
 * each call site, so acc[][] lives in registers (G*R + G + 1 vector
 * registers: at most 16 for G <= 2, 32 for G == 4). */
FB_INLINE ATTR void NAME(tile_list1)(VT* acc, const int R, const FT* src, ptrdiff_t pstride,
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

FB_INLINE ATTR void NAME(chunk_core)(FT* out, ptrdiff_t ostride, const int R, const int G,
                                         const FT* src, ptrdiff_t pstride, const int* pool,
                                         const fastbp_tile_group* grp, const FT* wb,
                                         ptrdiff_t wostride, int w, int kh0, int kh1)
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
            for (kh = kh0; kh < kh1; kh++) {
                const FT* srow = s + kh * w;
                for (kw = 0; kw < 5; kw++) {
                    for (g = 0; g < G; g++) wv[g] = VSET1(k[g * wostride + kh * 5 + kw]);
                    for (r = 0; r < R; r++) {
                        const VT xv = VLOADR(srow + kw + r * VL);
                        for (g = 0; g < G; g++) acc[g][r] = VFMA(wv[g], xv, acc[g][r]);
                    }
                }
            }
        }
        if (G == 2)
            NAME(tile_list1)(acc[1], R, src, pstride, pool + grp->b, grp->nb, wb + wostride, w,
                             kh0, kh1);
    }
    if (G <= 2)
        NAME(tile_list1)(acc[0], R, src, pstride, pool + grp->a, grp->na, wb, w, kh0, kh1);
    for (g = 0; g < G; g++)
        for (r = 0; r < R; r++) VSTORE(out + g * ostride + r * VL, acc[g][r]);
}

#define FASTBP_CHUNK_N(G, RN)                                                             \
    static ATTR void NAME(chunk##G##_##RN)(FT* out, ptrdiff_t ostride, const FT* src,      \
                                           ptrdiff_t pstride, const int* pool,             \
                                           const fastbp_tile_group* grp, const FT* wb,     \
                                           ptrdiff_t wostride, int w, int kh0, int kh1)    \
    {                                                                                     \
        if (kh0 == 0 && kh1 == 5) /* constant bounds: the usual, faster loop */           \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, pool, grp, wb, wostride, w, 0, \
                             5);                                                          \
        else                                                                              \
            NAME(chunk_core)(out, ostride, RN, G, src, pstride, pool, grp, wb, wostride, w, \
                             kh0, kh1);                                                   \
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
    /* G == 4 keeps the tiles of G == 2 (kh0, kh1 depend on them) */
    const int G = grp->G, rmax = G == 1 ? 8 : 6;
    const FT* wb = wbase + grp->o * wostride;
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
        NAME(chunk##GG##_##RN)(out, tstride, s, pstride, pool, grp, wb, wostride, w, kh0, kh1); \
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
        v0 += R;
    }
}

/* Weight-gradient accumulators of G (1, 2 or 4) pairs (o_g, i) that share the
 * input map x, for kernel row kh:
 *   g[g][(kh*5 + kw)*VL + lane] += sum_v dz[g][v*VL + lane] * x[v*VL + lane + kh*w + kw].
 * G*5 accumulators stay in registers; each x load feeds G multiply-adds. */
FB_INLINE ATTR void NAME(gw_core)(FT* const* gp, const FT* const* dz, const FT* x, int w,
                                      int nv, int kh, const int G)
{
    VT a[GT][5], d[GT];
    int g, kw, v;
    for (g = 0; g < G; g++)
        for (kw = 0; kw < 5; kw++) a[g][kw] = VLOAD(gp[g] + (kh * 5 + kw) * VL);
    for (v = 0; v < nv; v++) {
        const FT* xv = x + v * VL + kh * w;
        for (g = 0; g < G; g++) d[g] = VLOAD(dz[g] + v * VL);
        if (G == 1) {
            for (kw = 0; kw < 5; kw++) a[0][kw] = VFMA(d[0], VLOAD(xv + kw), a[0][kw]);
        } else {
            for (kw = 0; kw < 5; kw++) {
                const VT xk = VLOADR(xv + kw);
                for (g = 0; g < G; g++) a[g][kw] = VFMA(d[g], xk, a[g][kw]);
            }
        }
    }
    for (g = 0; g < G; g++)
        for (kw = 0; kw < 5; kw++) VSTORE(gp[g] + (kh * 5 + kw) * VL, a[g][kw]);
}

#define FASTBP_GW_N(G)                                                                    \
    static ATTR void NAME(gw##G)(FT* const* gp, const FT* const* dz, const FT* x, int w,  \
                                 int nv)                                                  \
    {                                                                                     \
        int kh;                                                                           \
        for (kh = 0; kh < 5; kh++) NAME(gw_core)(gp, dz, x, w, nv, kh, G);                \
    }
FASTBP_GW_N(1)
FASTBP_GW_N(2)
#if GT >= 4
FASTBP_GW_N(4)
#endif
#undef FASTBP_GW_N

/* Forward pass of one sample. T: scratch of GT*tstride elements, with
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
        }
    }
    /* the activation in one pass over the sample's maps */
    EW(fastbp_act)(y, y, NULL, c_out * oplane, a->act);
}

/* Backward pass of samples [i0, i1): writes dX of those samples (if wanted)
 * and part = [grad_W of the connected pairs (npairs, 25), grad_b (c_out)]
 * summed over the block. scratch: c_out*dzp_stride + npairs*25*VL + GT*tstride. */
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
            for (r = 0; r < ho; r++) NAME(copy_row)(dst + r * w, src + r * wo, wo);
            gb[co] += NAME(sum_fixed)(src, oplane);
        }
        /* grad_W: the output maps of input map ci, GT at a time (then 2, 1). */
        for (ci = 0; ci < c_in; ci++) {
            const int* lst = a->blist + (ptrdiff_t)ci * c_out;
            const FT* xs = x + ci * plane;
            for (k = 0; k < a->bn[ci];) {
                FT* gp[GT];
                const FT* dzg[GT];
                const int gn = a->bn[ci] - k >= GT ? GT : a->bn[ci] - k >= 2 ? 2 : 1;
                int t;
                for (t = 0; t < gn; t++) {
                    const int o = lst[k + t];
                    gp[t] = gacc + (ptrdiff_t)a->pid[o * c_in + ci] * 25 * VL;
                    dzg[t] = dzp + o * st + 4 * w + 4;
                }
#if GT >= 4
                if (gn == 4)
                    NAME(gw4)(gp, dzg, xs, w, nv);
                else
#endif
                if (gn == 2)
                    NAME(gw2)(gp, dzg, xs, w, nv);
                else
                    NAME(gw1)(gp, dzg, xs, w, nv);
                k += gn;
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

/* Pooling backward of samples [i0, i1): dY of those samples (if wanted) and
 * part = [grad_coef (c), grad_bias (c)] over the block. T: 2*c*w2p + c*h*w
 * elements, w2p = w/2 rounded up to a multiple of VL (any copy's VL divides
 * it). The sums run per column of the pooled plane (a lane each, over the
 * block's samples and rows in order), then over the columns in order: the
 * same order for every vector width (the AVX copies fuse grad_coef's
 * multiply-add, so they may differ from the portable one in the last bit). */
static ATTR void NAME(pool_bwd_block)(const ARGS(pool_args)* a, int i0, int i1, FT* T,
                                      ptrdiff_t w2p, FT* part)
{
    const int h2 = a->h / 2, w2 = a->w / 2, w = a->w;
    const ptrdiff_t plane = (ptrdiff_t)a->h * w, oplane = (ptrdiff_t)h2 * w2;
    const VT quarter = VSET1((FT)0.25);
    FT* const col_coef = T;             /* (c, w2p) */
    FT* const col_bias = T + a->c * w2p; /* (c, w2p) */
    FT* const E = T + 2 * a->c * w2p;
    int i, ch, r, c0, c;
    for (c = 0; c < 2 * a->c * w2p; c++) T[c] = 0;
    for (i = i0; i < i1; i++) {
        for (ch = 0; ch < a->c; ch++) {
            const ptrdiff_t off = (ptrdiff_t)i * a->c + ch;
            const FT* y = a->Y + off * plane;
            const FT* dz = a->dZ + off * oplane;
            const VT k = VSET1(a->coef[ch] * (FT)0.25);
            for (c0 = 0; c0 < w2; c0 += VL) {
                const int n = w2 - c0 < VL ? w2 - c0 : VL;
                FT* const cc = col_coef + ch * w2p + c0;
                FT* const cb = col_bias + ch * w2p + c0;
                /* dz times the mean of each block: grad_coef's terms */
                VT sc = VLOAD(cc), sb = VLOAD(cb);
                for (r = 0; r < h2; r++) {
                    const VT s = NAME(block_sums_n)(y + 2 * r * w, y + (2 * r + 1) * w, c0, n);
                    const VT d = NAME(load_n)(dz + r * w2 + c0, n);
                    sc = VADD(sc, VMUL(d, VMUL(quarter, s)));
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
                VSTORE(cc, sc);
                VSTORE(cb, sb);
            }
        }
        if (a->dY != NULL) {
            const ptrdiff_t first = (ptrdiff_t)i * a->c * plane;
            EW(fastbp_dact)(a->dY + first, E, NULL, a->Y + first, a->c * plane, a->act);
        }
    }
    for (ch = 0; ch < a->c; ch++) {
        FT sc = 0, sb = 0;
        for (c = 0; c < w2; c++) {
            sc += col_coef[ch * w2p + c];
            sb += col_bias[ch * w2p + c];
        }
        part[ch] = sc;
        part[a->c + ch] = sb;
    }
}

#undef GT
#include "fb_lanes_undef.h"
