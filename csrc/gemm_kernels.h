/* Template of gemm.c's kernel for one (dtype, instruction set) pair; gemm.c
 * includes it once per pair (no include guard), after defining FB_LANES_F32
 * and FB_LANES_ISA (fb_lanes.h turns them into FT, VT, VL, NAME and ATTR).
 * The algorithm is described at the top of gemm.c.
 */
#include "fb_lanes.h"
#include "fb_lanes_partial.h"

/* Rows of a tile two vectors wide (MRW: 2 * MRW accumulators of the 32
 * (AVX-512) or 16 (AVX2) vector registers, with two of B and a broadcast)
 * and of a tile one vector wide (MRN). Twelve rows at most: each row's
 * address takes a general register. */
#if FB_LANES_ISA == FB_LEVEL_AVX512
#define MRW 12
#define MRN 12
#else
#define MRW 6
#define MRN 12
#endif
/* Vectors of a one-row tile: a row alone (a prediction's) needs that many
 * independent accumulators to cover the FMA's latency. */
#define ROWV 8
/* Most columns of C, past its panels of 2 vectors, that gemm_edge takes. */
#define EDGE_COLS 4
/* Rows of k packed at a time: the panel (KC x 2 vectors) fills
 * FASTBP_GEMM_PANEL_BYTES. */
#define KC ((int)(FASTBP_GEMM_PANEL_BYTES / (2 * VL * sizeof(FT))))

/* C[0:mr, 0:cols] = (load_c ? C : 0) + A[0:mr, 0:kc] @ P, one multiply-add
 * after the other along k for each element. A's element (r, kk) is at
 * A[r * ars + kk * acs]; P holds kc rows, ldp apart, of nv * VL columns
 * (zero beyond cols): packed, or B itself. mr and nv are constants once
 * inlined, so the accumulators live in registers. */
FB_INLINE ATTR void NAME(gemm_tile)(const int mr, const int nv, ptrdiff_t kc, const FT* A,
                                   ptrdiff_t ars, ptrdiff_t acs, const FT* P, ptrdiff_t ldp,
                                   FT* C, ptrdiff_t ldc, int cols, int load_c)
{
    VT acc[2 * MRW > MRN ? 2 * MRW : MRN], b[ROWV];
    ptrdiff_t kk;
    int r, v;
    const int full = cols == nv * VL;
    /* lanes of the last vector (a partial one when cols is not nv * VL) */
    const int last = cols - (nv - 1) * VL;
    FASTBP_UNROLL_ALL
    for (r = 0; r < mr; r++)
        for (v = 0; v < nv; v++) {
            if (!load_c)
                acc[r * nv + v] = VSET1((FT)0);
            else if (full || v < nv - 1)
                acc[r * nv + v] = VLOAD(C + r * ldc + v * VL);
            else
                acc[r * nv + v] = NAME(load_n)(C + r * ldc + v * VL, last);
        }
    for (kk = 0; kk < kc; kk++) {
        const FT* a = A + kk * acs;
        const FT* p = P + kk * ldp;
        FASTBP_UNROLL_ALL
        for (v = 0; v < nv; v++) b[v] = VLOAD(p + v * VL);
        FASTBP_UNROLL_ALL
        for (r = 0; r < mr; r++) {
            const VT ar = VSET1(a[r * ars]);
            FASTBP_UNROLL_ALL
            for (v = 0; v < nv; v++) acc[r * nv + v] = VFMA(ar, b[v], acc[r * nv + v]);
        }
    }
    FASTBP_UNROLL_ALL
    for (r = 0; r < mr; r++)
        for (v = 0; v < nv; v++) {
            if (full || v < nv - 1)
                VSTORE(C + r * ldc + v * VL, acc[r * nv + v]);
            else
                NAME(store_n)(C + r * ldc + v * VL, acc[r * nv + v], last);
        }
}

/* Each tile shape is a function of its own, so that the compiler allocates
 * its registers alone; a panel calls them through a table by rows. A packed
 * panel's row stride is a constant there (one register fewer). */
typedef void (*NAME(gemm_tile_fn))(ptrdiff_t kc, const FT* A, ptrdiff_t ars, ptrdiff_t acs,
                                   const FT* P, ptrdiff_t ldp, FT* C, ptrdiff_t ldc, int cols,
                                   int load_c);
#define FASTBP_GEMM_TILE(MR, NV)                                                                \
    static ATTR __attribute__((noinline)) void NAME(gemm_tile_##NV##_##MR)(                      \
        ptrdiff_t kc, const FT* A, ptrdiff_t ars, ptrdiff_t acs, const FT* P, ptrdiff_t ldp,     \
        FT* C, ptrdiff_t ldc, int cols, int load_c)                                              \
    {                                                                                            \
        if (ldp == NV * VL)                                                                      \
            NAME(gemm_tile)(MR, NV, kc, A, ars, acs, P, NV * VL, C, ldc, cols, load_c);          \
        else                                                                                     \
            NAME(gemm_tile)(MR, NV, kc, A, ars, acs, P, ldp, C, ldc, cols, load_c);              \
    }
#define FASTBP_GEMM_TILES_6(NV)                                                                 \
    FASTBP_GEMM_TILE(1, NV) FASTBP_GEMM_TILE(2, NV) FASTBP_GEMM_TILE(3, NV)                     \
    FASTBP_GEMM_TILE(4, NV) FASTBP_GEMM_TILE(5, NV) FASTBP_GEMM_TILE(6, NV)
#define FASTBP_GEMM_TILES_12(NV)                                                                \
    FASTBP_GEMM_TILES_6(NV) FASTBP_GEMM_TILE(7, NV) FASTBP_GEMM_TILE(8, NV)                     \
    FASTBP_GEMM_TILE(9, NV) FASTBP_GEMM_TILE(10, NV) FASTBP_GEMM_TILE(11, NV)                   \
    FASTBP_GEMM_TILE(12, NV)
#define FASTBP_GEMM_TABLE_6(NV)                                                                 \
    NAME(gemm_tile_##NV##_1), NAME(gemm_tile_##NV##_2), NAME(gemm_tile_##NV##_3),                \
    NAME(gemm_tile_##NV##_4), NAME(gemm_tile_##NV##_5), NAME(gemm_tile_##NV##_6)
#define FASTBP_GEMM_TABLE_12(NV)                                                                \
    FASTBP_GEMM_TABLE_6(NV), NAME(gemm_tile_##NV##_7), NAME(gemm_tile_##NV##_8),                 \
    NAME(gemm_tile_##NV##_9), NAME(gemm_tile_##NV##_10), NAME(gemm_tile_##NV##_11),              \
    NAME(gemm_tile_##NV##_12)
FASTBP_GEMM_TILES_12(1)
FASTBP_GEMM_TILE(1, 8) /* gemm_tile_8_1: one row of ROWV vectors */
#if MRW == 12
FASTBP_GEMM_TILES_12(2)
static const NAME(gemm_tile_fn) NAME(gemm_tiles)[2][12] = {{FASTBP_GEMM_TABLE_12(1)},
                                                           {FASTBP_GEMM_TABLE_12(2)}};
#else
FASTBP_GEMM_TILES_6(2)
static const NAME(gemm_tile_fn) NAME(gemm_tiles)[2][12] = {{FASTBP_GEMM_TABLE_12(1)},
                                                           {FASTBP_GEMM_TABLE_6(2)}};
#endif
#undef FASTBP_GEMM_TILES_6
#undef FASTBP_GEMM_TILES_12
#undef FASTBP_GEMM_TABLE_6
#undef FASTBP_GEMM_TABLE_12
#undef FASTBP_GEMM_TILE

/* C[:, 0:cols] (+)= A @ P over the rows of one panel, nv vectors wide (rows
 * of P ldp apart): tiles of up to MRW (nv = 2) or MRN (nv = 1) rows. */
static ATTR void NAME(gemm_panel)(int nv, ptrdiff_t m, ptrdiff_t kc, const FT* A, ptrdiff_t ars,
                                  ptrdiff_t acs, const FT* P, ptrdiff_t ldp, FT* C,
                                  ptrdiff_t ldc, int cols, int load_c)
{
    const ptrdiff_t mr = nv == 2 ? MRW : MRN;
    ptrdiff_t i;
    for (i = 0; i < m; i += mr)
        NAME(gemm_tiles)[nv - 1][(m - i < mr ? m - i : mr) - 1](
            kc, A + i * ars, ars, acs, P, ldp, C + i * ldc, ldc, cols, load_c);
}

/* dst[c * ldd + r] = src[r * lds + c] for r, c < VL: a block of VL rows
 * transposed in registers. Interleaving pairs of rows (then, for floats,
 * pairs of pairs as doubles) leaves in each 128-bit lane G consecutive rows
 * of one column; a transpose of the 128-bit lanes then gathers each column
 * (4 x 4 lanes with AVX-512, 2 x 2 with AVX2). */
#if FB_LANES_F32
#define G 4
#define FASTBP_SHUF128 _mm512_shuffle_f32x4
#else
#define G 2
#define FASTBP_SHUF128 _mm512_shuffle_f64x2
#endif
FB_INLINE ATTR void NAME(transpose)(const FT* src, ptrdiff_t lds, FT* dst, ptrdiff_t ldd)
{
    VT r[VL], y[VL];
    int i, c;
    for (i = 0; i < VL; i++) r[i] = VLOAD(src + i * lds);
    for (i = 0; i < VL / 2; i++) {
        y[2 * i] = FASTBP_LANE(unpacklo)(r[2 * i], r[2 * i + 1]);
        y[2 * i + 1] = FASTBP_LANE(unpackhi)(r[2 * i], r[2 * i + 1]);
    }
#if FB_LANES_F32
    for (i = 0; i < VL / 4; i++) {
        __auto_type a0 = FASTBP_LANE_W(castps_pd)(y[4 * i]);
        __auto_type a1 = FASTBP_LANE_W(castps_pd)(y[4 * i + 2]);
        __auto_type b0 = FASTBP_LANE_W(castps_pd)(y[4 * i + 1]);
        __auto_type b1 = FASTBP_LANE_W(castps_pd)(y[4 * i + 3]);
        r[4 * i] = FASTBP_LANE_W(castpd_ps)(FASTBP_LANE_W(unpacklo_pd)(a0, a1));
        r[4 * i + 1] = FASTBP_LANE_W(castpd_ps)(FASTBP_LANE_W(unpackhi_pd)(a0, a1));
        r[4 * i + 2] = FASTBP_LANE_W(castpd_ps)(FASTBP_LANE_W(unpacklo_pd)(b0, b1));
        r[4 * i + 3] = FASTBP_LANE_W(castpd_ps)(FASTBP_LANE_W(unpackhi_pd)(b0, b1));
    }
    for (i = 0; i < VL; i++) y[i] = r[i];
#endif
    /* y[q G + c]: lane l holds column l G + c of rows q G .. q G + G - 1 */
    for (c = 0; c < G; c++) {
#if FB_LANES_ISA == FB_LEVEL_AVX512
        const VT p0 = FASTBP_SHUF128(y[c], y[G + c], 0x88);
        const VT q0 = FASTBP_SHUF128(y[2 * G + c], y[3 * G + c], 0x88);
        const VT p1 = FASTBP_SHUF128(y[c], y[G + c], 0xDD);
        const VT q1 = FASTBP_SHUF128(y[2 * G + c], y[3 * G + c], 0xDD);
        VSTORE(dst + c * ldd, FASTBP_SHUF128(p0, q0, 0x88));
        VSTORE(dst + (G + c) * ldd, FASTBP_SHUF128(p1, q1, 0x88));
        VSTORE(dst + (2 * G + c) * ldd, FASTBP_SHUF128(p0, q0, 0xDD));
        VSTORE(dst + (3 * G + c) * ldd, FASTBP_SHUF128(p1, q1, 0xDD));
#else
        VSTORE(dst + c * ldd, FASTBP_LANE(permute2f128)(y[c], y[G + c], 0x20));
        VSTORE(dst + (G + c) * ldd, FASTBP_LANE(permute2f128)(y[c], y[G + c], 0x31));
#endif
    }
}
#undef G
#undef FASTBP_SHUF128

/* Rows [0, mc) and k [0, kc) of A^T (A's element (kk, r) at A[kk * lda +
 * r]) copied into Q as a row-major mc x kc block, which the tiles then read
 * as they read an A that is not transposed: VL x VL blocks transposed in
 * registers, the edges element by element. Read in place, A^T takes each
 * step of k from another row of A, lda apart (3 KB for 784 inputs), beyond
 * the stride the hardware prefetcher follows: 784 x 128 x 256 (an MLP's
 * weight gradient) ran 10% slower than from a transposed copy of A made
 * beforehand (8% slower than with the copy's own time counted). */
static ATTR void NAME(gemm_pack_a)(const FT* A, ptrdiff_t lda, ptrdiff_t mc, ptrdiff_t kc, FT* Q)
{
    const ptrdiff_t mv = mc / VL * VL, kv = kc / VL * VL;
    ptrdiff_t r, kk;
    for (r = 0; r < mv; r += VL)
        for (kk = 0; kk < kv; kk += VL) NAME(transpose)(A + kk * lda + r, lda, Q + r * kc + kk, kc);
    for (r = 0; r < mc; r++)
        for (kk = r < mv ? kv : 0; kk < kc; kk++) Q[r * kc + kk] = A[kk * lda + r];
}

/* Panels of B (2 vectors of columns each) from which a block of A^T is
 * copied (gemm_pack_a): the panels share the copy's cost, and with fewer
 * it did not pay (AVX-512, one thread: 784 x 128 x 256, 8 panels, 8%
 * faster; 128 x 1600 x 128, 4 panels, 3% slower; the 64 columns before
 * 65 classes' last, 2 panels, 11% slower). */
#define FASTBP_GEMM_COPY_A_PANELS 8

/* Bytes of gemm_pack_a's copy of mc rows by kc. */
static size_t NAME(gemm_packed_a_bytes)(ptrdiff_t mc, ptrdiff_t kc)
{
    return (size_t)mc * (size_t)kc * sizeof(FT);
}

/* Pack rows k0..k0+kc of columns j0..j0+cols of op(B) into P: kc rows of
 * width = nv * VL elements, zero beyond cols. op(B)'s element (kk, j) is
 * B[kk * ldb + j], or B[j * ldb + kk] when trans_b. */
static ATTR void NAME(gemm_pack)(int trans_b, const FT* B, ptrdiff_t ldb, ptrdiff_t k0,
                                  ptrdiff_t kc, ptrdiff_t j0, int cols, int width, FT* P)
{
    ptrdiff_t kk;
    int j;
    if (!trans_b && cols == width) {
        /* rows ldb apart defeat the hardware prefetcher: fetch ahead */
        for (kk = 0; kk < kc; kk++) {
            const FT* src = B + (k0 + kk) * ldb + j0;
            FASTBP_PREFETCH(src, FASTBP_GEMM_AHEAD * ldb * sizeof(FT));
            FASTBP_PREFETCH(src, (FASTBP_GEMM_AHEAD * ldb + width - 1) * sizeof(FT));
            for (j = 0; j < width; j += VL) VSTORE(P + kk * width + j, VLOAD(src + j));
        }
    } else if (!trans_b) {
        for (kk = 0; kk < kc; kk++)
            for (j = 0; j < width; j++)
                P[kk * width + j] = j < cols ? B[(k0 + kk) * ldb + j0 + j] : (FT)0;
    } else {
        /* a column of the panel is a row of B: whole VL x VL blocks are
         * transposed in registers, the edges element by element */
        const ptrdiff_t kv = kc / VL * VL;
        const int jv = cols / VL * VL;
        ptrdiff_t kb;
        for (j = 0; j < jv; j += VL)
            for (kb = 0; kb < kv; kb += VL)
                NAME(transpose)(B + (j0 + j) * ldb + k0 + kb, ldb, P + kb * width + j, width);
        for (j = 0; j < width; j++) {
            const FT* src = B + (j0 + j) * ldb + k0;
            if (j < jv)
                for (kk = kv; kk < kc; kk++) P[kk * width + j] = src[kk];
            else if (j < cols)
                for (kk = 0; kk < kc; kk++) P[kk * width + j] = src[kk];
            else
                for (kk = 0; kk < kc; kk++) P[kk * width + j] = (FT)0;
        }
    }
}

/* Rows of k of each block gemm_blocked packs at a time: even blocks of at
 * most KC. */
static ptrdiff_t NAME(gemm_kblock)(ptrdiff_t k)
{
    const ptrdiff_t n_kblocks = (k + KC - 1) / KC;
    return (k + n_kblocks - 1) / n_kblocks;
}

/* Bytes of n columns of op(B) (k rows) packed by gemm_pack_all. */
static size_t NAME(gemm_packed_bytes)(ptrdiff_t n, ptrdiff_t k)
{
    return (size_t)((n + 2 * VL - 1) / (2 * VL)) * (size_t)k * 2 * VL * sizeof(FT);
}

/* All of columns [j_lo, j_hi) of op(B) packed as gemm_blocked reads them:
 * panel p (2 vectors of columns) at packed + p k 2 VL, its rows `width`
 * elements each. */
static ATTR void NAME(gemm_pack_all)(int trans_b, const FT* B, ptrdiff_t ldb, ptrdiff_t k,
                                      ptrdiff_t j_lo, ptrdiff_t j_hi, FT* packed)
{
    const ptrdiff_t kb = NAME(gemm_kblock)(k);
    ptrdiff_t j0, k0;
    for (j0 = j_lo; j0 < j_hi; j0 += 2 * VL) {
        const int cols = j_hi - j0 < 2 * VL ? (int)(j_hi - j0) : 2 * VL;
        const int width = cols > VL ? 2 * VL : VL;
        for (k0 = 0; k0 < k; k0 += kb)
            NAME(gemm_pack)(trans_b, B, ldb, k0, k - k0 < kb ? k - k0 : kb, j0, cols, width,
                            packed + (j0 - j_lo) * k + k0 * width);
    }
}

/* One step of gemm_blocked over mc rows (A and C at their first): the panel
 * of columns j0.. of op(B) and the block of k at k0 (kb rows, fewer at the
 * end), packed into P, taken from `packed` (op(B) packed from column j_lo)
 * or read in place, then multiplied into C's columns j0... by the block of
 * A at k0, read in place or, where Q is not NULL, from gemm_pack_a's copy of
 * it in Q. */
FB_INLINE ATTR void NAME(gemm_block_step)(int trans_b, ptrdiff_t mc, ptrdiff_t j0,
                                          ptrdiff_t j_lo, ptrdiff_t j_hi, ptrdiff_t k,
                                          ptrdiff_t k0, ptrdiff_t kb, const FT* A,
                                          ptrdiff_t ars, ptrdiff_t acs, const FT* Q,
                                          const FT* B, ptrdiff_t ldb, int accumulate, FT* C,
                                          ptrdiff_t ldc, FT* P, const FT* packed)
{
    const int cols = j_hi - j0 < 2 * VL ? (int)(j_hi - j0) : 2 * VL;
    const int width = cols > VL ? 2 * VL : VL;
    const ptrdiff_t kc = k - k0 < kb ? k - k0 : kb;
    const FT* panel = P;
    ptrdiff_t ldp = width;
    if (packed != NULL) {
        panel = packed + (j0 - j_lo) * k + k0 * width;
    } else if (!trans_b && cols == width && mc <= 2) {
        panel = B + k0 * ldb + j0; /* read in place */
        ldp = ldb;
    } else {
        NAME(gemm_pack)(trans_b, B, ldb, k0, kc, j0, cols, width, P);
    }
    if (Q != NULL)
        NAME(gemm_panel)(width / VL, mc, kc, Q, kc, 1, panel, ldp, C + j0, ldc, cols,
                         accumulate || k0 > 0);
    else
        NAME(gemm_panel)(width / VL, mc, kc, A + k0 * acs, ars, acs, panel, ldp, C + j0, ldc,
                         cols, accumulate || k0 > 0);
}

/* Rows [i_lo, i_hi) and columns [j_lo, j_hi) of gemm's C: panels of 2
 * vectors of columns, each packed KC rows of k at a time into P, over blocks
 * of MC rows that stay in L2 while every panel passes over them. With more
 * than one block of rows, all of op(B) is packed once, up front, into a
 * buffer of the heap (where it fits FASTBP_GEMM_PACKED_BYTES and the
 * allocation succeeds): packing it again for each block gathered it from
 * B's rows each time, 5% of a 10,000-row product's time. Unless `packed`
 * holds op(B) so already (gemm_pack_all, from j_lo), when B is not read.
 * With A^T and FASTBP_GEMM_COPY_A_PANELS panels or more, each block of A^T
 * (MC rows by a block of k) is copied by gemm_pack_a, once for all the
 * panels that pass over it, into a buffer of the heap (none to be had: A^T
 * is read in place). */
static ATTR void NAME(gemm_blocked)(int trans_a, int trans_b, ptrdiff_t i_lo, ptrdiff_t i_hi,
                                     ptrdiff_t j_lo, ptrdiff_t j_hi, ptrdiff_t k, const FT* A,
                                     ptrdiff_t lda, const FT* B, ptrdiff_t ldb, int accumulate,
                                     FT* C, ptrdiff_t ldc, FT* P, const FT* packed)
{
    const ptrdiff_t ars = trans_a ? 1 : lda, acs = trans_a ? lda : 1;
    const ptrdiff_t kb = NAME(gemm_kblock)(k);
    const ptrdiff_t mc_most = i_hi - i_lo < FASTBP_GEMM_MC ? i_hi - i_lo : FASTBP_GEMM_MC;
    const size_t packed_size = NAME(gemm_packed_bytes)(j_hi - j_lo, k);
    void *held = NULL, *held_a = NULL;
    FT *own, *Q = NULL;
    ptrdiff_t i0, j0, k0;
    if (packed == NULL && i_hi - i_lo > FASTBP_GEMM_MC && j_hi > j_lo
        && packed_size <= FASTBP_GEMM_PACKED_BYTES
        && (own = (FT*)fb_alloc_lines(packed_size, &held)) != NULL) {
        NAME(gemm_pack_all)(trans_b, B, ldb, k, j_lo, j_hi, own);
        packed = own;
    }
    if (trans_a && j_hi - j_lo > (FASTBP_GEMM_COPY_A_PANELS - 1) * 2 * VL && mc_most > 0)
        Q = (FT*)fb_alloc_lines(NAME(gemm_packed_a_bytes)(mc_most, kb), &held_a);
    for (i0 = i_lo; i0 < i_hi; i0 += FASTBP_GEMM_MC) {
        const ptrdiff_t mc = i_hi - i0 < FASTBP_GEMM_MC ? i_hi - i0 : FASTBP_GEMM_MC;
        /* Each panel passes over all of the block's k; where A's rows
         * (mc x k) outweigh a block of k of them plus the block's C, blocks
         * of k go outermost instead, so that only mc x kb of A (and C) stay
         * in L2 while the panels pass (784-wide rows: 128 x 784 x 256 read
         * 400 KB of A per panel). So they do when A^T is copied, a block
         * of k at a time. Same bits: each element still adds its blocks of
         * k in order. */
        if (Q != NULL || (kb < k && kb + (j_hi - j_lo) < k)) {
            for (k0 = 0; k0 < k; k0 += kb) {
                if (Q != NULL)
                    NAME(gemm_pack_a)(A + i0 + k0 * lda, lda, mc, k - k0 < kb ? k - k0 : kb, Q);
                for (j0 = j_lo; j0 < j_hi; j0 += 2 * VL)
                    NAME(gemm_block_step)(trans_b, mc, j0, j_lo, j_hi, k, k0, kb, A + i0 * ars,
                                          ars, acs, Q, B, ldb, accumulate, C + i0 * ldc, ldc,
                                          P, packed);
            }
        } else {
            for (j0 = j_lo; j0 < j_hi; j0 += 2 * VL)
                for (k0 = 0; k0 < k; k0 += kb)
                    NAME(gemm_block_step)(trans_b, mc, j0, j_lo, j_hi, k, k0, kb, A + i0 * ars,
                                          ars, acs, NULL, B, ldb, accumulate, C + i0 * ldc,
                                          ldc, P, packed);
        }
    }
    free(held_a);
    free(held);
}

/* C[0:ev VL, 0:cols] (+)= op(A)[0:ev VL, :] @ op(B)[:, 0:cols], one chunk of
 * gemm_edge's rows: ev vectors of rows, all the edge's columns at each
 * step of k, ev * cols accumulators (trans_a, ev and cols are constants once
 * inlined). op(B)'s element (kk, j) is B[kk * bks + j * bjs]. With A^T, a
 * row of A holds VL consecutive rows of A^T. With A itself, each block of VL
 * rows by VL of k is first transposed in registers into T, whose rows then
 * hold VL rows of one column of A (the last k % VL columns are copied
 * element by element); T holds ev VL x VL blocks. */
FB_INLINE ATTR void NAME(gemm_edge_chunk)(const int trans_a, const int ev, const int cols,
                                         ptrdiff_t k, const FT* A, ptrdiff_t lda, const FT* B,
                                         ptrdiff_t bks, ptrdiff_t bjs, int accumulate, FT* C,
                                         ptrdiff_t ldc, FT* T)
{
    FB_ALIGN64 FT edge[VL];
    VT acc[9], a[8];
    ptrdiff_t k0, kk;
    int v, j, l;
    FASTBP_UNROLL_ALL
    for (v = 0; v < ev; v++) {
        FASTBP_UNROLL_ALL
        for (j = 0; j < cols; j++) {
            if (accumulate) {
                for (l = 0; l < VL; l++) edge[l] = C[(v * VL + l) * ldc + j];
                acc[v * cols + j] = VLOAD(edge);
            } else {
                acc[v * cols + j] = VSET1((FT)0);
            }
        }
    }
    for (k0 = 0; k0 < k; k0 += VL) {
        const int kn = k - k0 < VL ? (int)(k - k0) : VL;
        if (!trans_a && kn == VL) {
            for (v = 0; v < ev; v++) NAME(transpose)(A + v * VL * lda + k0, lda, T + v * VL * VL, VL);
        } else if (!trans_a) {
            for (v = 0; v < ev; v++)
                for (kk = 0; kk < kn; kk++)
                    for (l = 0; l < VL; l++) T[(v * VL + kk) * VL + l] = A[(v * VL + l) * lda + k0 + kk];
        }
        for (kk = 0; kk < kn; kk++) {
            FASTBP_UNROLL_ALL
            for (v = 0; v < ev; v++)
                a[v] = trans_a ? VLOAD(A + (k0 + kk) * lda + v * VL) : VLOAD(T + (v * VL + kk) * VL);
            FASTBP_UNROLL_ALL
            for (j = 0; j < cols; j++) {
                const VT b = VSET1(B[(k0 + kk) * bks + j * bjs]);
                FASTBP_UNROLL_ALL
                for (v = 0; v < ev; v++) acc[v * cols + j] = VFMA(a[v], b, acc[v * cols + j]);
            }
        }
    }
    FASTBP_UNROLL_ALL
    for (v = 0; v < ev; v++) {
        FASTBP_UNROLL_ALL
        for (j = 0; j < cols; j++) {
            VSTORE(edge, acc[v * cols + j]);
            for (l = 0; l < VL; l++) C[(v * VL + l) * ldc + j] = edge[l];
        }
    }
}

/* The chunk of the edge's cols columns at row i0 (A's row i0 at A_i0), e1
 * ... e4 vectors of rows for 1 ... 4 columns, specialized (its
 * accumulators in registers). */
#define FASTBP_EDGE_CHUNK(TRANS_A, A_i0, e1, e2, e3, e4)                                         \
    if (cols == 1)                                                                              \
        NAME(gemm_edge_chunk)(TRANS_A, e1, 1, k, A_i0, lda, B, bks, bjs, accumulate,            \
                              C + i0 * ldc, ldc, T);                                               \
    else if (cols == 2)                                                                         \
        NAME(gemm_edge_chunk)(TRANS_A, e2, 2, k, A_i0, lda, B, bks, bjs, accumulate,            \
                              C + i0 * ldc, ldc, T);                                               \
    else if (cols == 3)                                                                         \
        NAME(gemm_edge_chunk)(TRANS_A, e3, 3, k, A_i0, lda, B, bks, bjs, accumulate,            \
                              C + i0 * ldc, ldc, T);                                               \
    else                                                                                        \
        NAME(gemm_edge_chunk)(TRANS_A, e4, 4, k, A_i0, lda, B, bks, bjs, accumulate,            \
                              C + i0 * ldc, ldc, T);

/* C[0:mv, 0:cols] (+)= op(A)[0:mv, :] @ op(B)[:, 0:cols] for mv a multiple
 * of VL, cols <= EDGE_COLS, with vectors along C's rows (gemm_edge_chunk
 * says how they get op(A)'s). A panel's tile would spend a whole vector on each
 * of these few columns (65 classes: the 65th column cost a fifth of a weight
 * gradient's time); here each multiply-add is a vector of useful ones. The
 * rows go 8 / cols vectors at a time (8, 4, 3 or 2), so that 8 or 9
 * independent chains of multiply-adds cover the FMA's latency (with 2, one
 * column of 1600 x 128 took 36 us, seven times its share of the product),
 * then a vector at a time. An element is still one chain of multiply-adds
 * along k, in order, from 0 (or C): the same bits as a tile's. */
static ATTR void NAME(gemm_edge)(int trans_a, ptrdiff_t mv, int cols, ptrdiff_t k, const FT* A,
                                  ptrdiff_t lda, const FT* B, ptrdiff_t bks, ptrdiff_t bjs,
                                  int accumulate, FT* C, ptrdiff_t ldc)
{
    /* the chunks' transposed blocks of A (one buffer for all their copies) */
    FB_ALIGN64 FT T[8 * VL * VL];
    const int ev = cols == 1 ? 8 : cols == 2 ? 4 : cols == 3 ? 3 : 2;
    ptrdiff_t i0;
    for (i0 = 0; i0 + ev * VL <= mv; i0 += ev * VL) {
        if (trans_a) {
            FASTBP_EDGE_CHUNK(1, A + i0, 8, 4, 3, 2)
        } else {
            FASTBP_EDGE_CHUNK(0, A + i0 * lda, 8, 4, 3, 2)
        }
    }
    for (; i0 < mv; i0 += VL) {
        if (trans_a) {
            FASTBP_EDGE_CHUNK(1, A + i0, 1, 1, 1, 1)
        } else {
            FASTBP_EDGE_CHUNK(0, A + i0 * lda, 1, 1, 1, 1)
        }
    }
}
#undef FASTBP_EDGE_CHUNK

/* C (m x n) = op(A) (m x k) @ op(B) (k x n) (+ C when accumulate), all
 * row-major; k >= 1 (gemm_blocked). One or two rows (a row to predict)
 * would use each packed element once or twice: they read B in place, ROWV
 * vectors of columns at a time. (From 3 rows on, packing pays: reading B in
 * place at 4 rows ran at 0.6x.) The last n % (2 VL) <= EDGE_COLS columns
 * go to gemm_edge, but for the last m % VL rows: with A^T always; with A
 * itself only where a vector holds 16 lanes (float32, AVX-512), the one
 * panel of one vector they would take otherwise using 1 to 4 of them. (The
 * 65th column of 1600 x 128 x 65 in float32 on AVX-512, one thread: the
 * product 216-221 -> 196-201 us; in float64 on AVX2, whose panel of one
 * vector wastes fewer lanes than the edge's transposes cost, 577-662 ->
 * 618-632.) */
static ATTR void NAME(gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                             const FT* A, ptrdiff_t lda, const FT* B, ptrdiff_t ldb,
                             int accumulate, FT* C, ptrdiff_t ldc)
{
    FB_ALIGN64 FT P[KC * 2 * VL];
    /* one or two rows: ROWV vectors of columns a tile, B read in place */
    const ptrdiff_t n_rowv = !trans_b && m <= 2 ? n / (ROWV * VL) * (ROWV * VL) : 0;
    const int n_edge = m >= VL && (trans_a || VL >= 16) && n % (2 * VL) <= EDGE_COLS
                           ? (int)(n % (2 * VL))
                           : 0;
    const ptrdiff_t bks = trans_b ? 1 : ldb, bjs = trans_b ? ldb : 1;
    const FT* B_edge;
    const ptrdiff_t mv = m / VL * VL;
    ptrdiff_t i0, j0;
    for (i0 = 0; i0 < m; i0++)
        for (j0 = 0; j0 < n_rowv; j0 += ROWV * VL)
            NAME(gemm_tile_8_1)(k, (trans_a ? A + i0 : A + i0 * lda), trans_a ? 1 : lda,
                                trans_a ? lda : 1, B + j0, ldb, C + i0 * ldc + j0, ldc,
                                ROWV * VL, accumulate);
    if (n_edge == 0) {
        NAME(gemm_blocked)(trans_a, trans_b, 0, m, n_rowv, n, k, A, lda, B, ldb, accumulate, C,
                           ldc, P, NULL);
        return;
    }
    B_edge = B + (n - n_edge) * bjs;
    if (trans_a) {
        /* The panels and the edge a block of k at a time, the edge right
         * after the panels' pass over the same rows of A, while they are in
         * L2 (at the end, over all of k, they came from L3: 11 of 27 us for
         * the 65th column of 1600 x 128). Each element's chain of
         * multiply-adds goes on from the C the block before stored: the
         * same bits. */
        const ptrdiff_t kb = NAME(gemm_kblock)(k);
        ptrdiff_t k0;
        for (k0 = 0; k0 < k; k0 += kb) {
            const ptrdiff_t kc = k - k0 < kb ? k - k0 : kb;
            const int acc = accumulate || k0 > 0;
            NAME(gemm_blocked)(trans_a, trans_b, 0, m, 0, n - n_edge, kc, A + k0 * lda, lda,
                               B + k0 * bks, ldb, acc, C, ldc, P, NULL);
            NAME(gemm_edge)(1, mv, n_edge, kc, A + k0 * lda, lda, B_edge + k0 * bks, bks, bjs,
                            acc, C + n - n_edge, ldc);
        }
    } else {
        /* The panels and the edge a block of rows at a time (op(B) packed
         * once, up front, for several), the edge right after the panels'
         * pass over those rows of A, while they are in L2. Each block's
         * whole vectors of rows then add up to rows [0, mv). */
        _Static_assert(FASTBP_GEMM_MC % VL == 0, "blocks of rows are whole vectors");
        const size_t packed_size = NAME(gemm_packed_bytes)(n - n_edge, k);
        void* held = NULL;
        FT* packed = NULL;
        ptrdiff_t i0;
        if (m > FASTBP_GEMM_MC && n > n_edge && packed_size <= FASTBP_GEMM_PACKED_BYTES
            && (packed = (FT*)fb_alloc_lines(packed_size, &held)) != NULL)
            NAME(gemm_pack_all)(trans_b, B, ldb, k, 0, n - n_edge, packed);
        for (i0 = 0; i0 < m; i0 += FASTBP_GEMM_MC) {
            const ptrdiff_t mc = m - i0 < FASTBP_GEMM_MC ? m - i0 : FASTBP_GEMM_MC;
            NAME(gemm_blocked)(0, trans_b, i0, i0 + mc, 0, n - n_edge, k, A, lda, B, ldb,
                               accumulate, C, ldc, P, packed);
            NAME(gemm_edge)(0, mc / VL * VL, n_edge, k, A + i0 * lda, lda, B_edge, bks, bjs,
                            accumulate, C + i0 * ldc + n - n_edge, ldc);
        }
        free(held);
    }
    NAME(gemm_blocked)(trans_a, trans_b, mv, m, n - n_edge, n, k, A, lda, B, ldb, accumulate, C,
                       ldc, P, NULL);
}

/* C (m x n) = A (m x k) @ op(B) (+ C), op(B) as gemm_pack_all packed all of
 * it: the same tiles, so the same bits, as gemm. */
static ATTR void NAME(gemm_packed)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FT* A,
                                    ptrdiff_t lda, const FT* packed, int accumulate, FT* C,
                                    ptrdiff_t ldc)
{
    NAME(gemm_blocked)(0, 0, 0, m, 0, n, k, A, lda, NULL, 0, accumulate, C, ldc, NULL, packed);
}

#undef MRW
#undef MRN
#undef KC
#undef ROWV
#undef EDGE_COLS
#undef FASTBP_GEMM_COPY_A_PANELS
#include "fb_lanes_undef.h"
