/* The vanilla RNN's time loop; the contract is in recurrent.h.
 *
 * Why not one BLAS call a step: the product of a step is small (64 x 256 by
 * 256 x 256 at the bench's large shape) and BLAS packs W again at every call.
 * scipy's OpenBLAS took 167 us for that product on one thread here, this
 * kernel 97 us with W packed beforehand. W is packed once per loop, into
 * panels of 2 vectors' width, and each tile of up to RNN_TILE_ROWS rows x 1
 * panel is summed in registers.
 *
 * Determinism: an element is always summed over k in order by the same
 * instructions (the tile height changes only which rows share a pass), and
 * the activation runs over whole rows, so the thread count, which only
 * decides who computes which rows, never changes a result.
 */
#include "fb_math.h" /* first: floating-point code generation */
#include "fb_alloc.h"
#include "fb_team.h"
#include "elementwise.h"
#include "recurrent.h"
#include <stdlib.h>

#define RNN_TILE_ROWS 6
/* Multiply-adds a step from which the loop runs on a team, and the fewest
 * rows (sequences) a thread of it is given. */
#define RNN_PARALLEL_MIN ((ptrdiff_t)1 << 18)
#define RNN_MIN_ROWS 4
/* Multiply-adds of a tile summed in one pass (an AVX2 panel, 16 floats
 * wide, of this many rows is 16 KiB: it stays in L1 across the row tiles). The same
 * on every path, so that the paths that fuse multiply-adds (AVX2, AVX-512)
 * round every element alike. */
#define RNN_KC 256

/* Vector types of the tiles: rnn_fN holds N floats, rnn_dN N doubles, and
 * rnn_fN_u / rnn_dN_u the same at any address (loads and stores). The
 * portable tiles use 16-byte vectors, the width SSE2 and NEON have, so that
 * their accumulators stay in registers; AVX2 32-byte and AVX-512 64-byte
 * ones. The width changes no result: each element is summed in its own lane. */
#if defined(__GNUC__) || defined(__clang__)
#define RNN_VECTOR(NAME, T, BYTES)                                             \
    typedef T NAME __attribute__((vector_size(BYTES)));                        \
    typedef T NAME##_u __attribute__((vector_size(BYTES), aligned(sizeof(T)), may_alias));
RNN_VECTOR(rnn_f4, float, 16)
RNN_VECTOR(rnn_d2, double, 16)
#define RNN_SPLAT_F4(s) ((rnn_f4){(s), (s), (s), (s)})
#define RNN_SPLAT_D2(s) ((rnn_d2){(s), (s)})
#define RNN_PREFETCH(p) __builtin_prefetch(p)
#define RNN_LANES_F 4
#define RNN_LANES_D 2
#else /* no vector extensions (MSVC): one value a "vector" */
typedef float rnn_f4;
typedef double rnn_d2;
typedef float rnn_f4_u;
typedef double rnn_d2_u;
#define RNN_SPLAT_F4(s) (s)
#define RNN_SPLAT_D2(s) (s)
#define RNN_PREFETCH(p) ((void)0)
#define RNN_LANES_F 1
#define RNN_LANES_D 1
#endif

#if FB_X86_COPIES
RNN_VECTOR(rnn_f8, float, 32)
RNN_VECTOR(rnn_d4, double, 32)
RNN_VECTOR(rnn_f16, float, 64)
RNN_VECTOR(rnn_d8, double, 64)
#define RNN_SPLAT_F8(s) ((rnn_f8){(s), (s), (s), (s), (s), (s), (s), (s)})
#define RNN_SPLAT_D4(s) ((rnn_d4){(s), (s), (s), (s)})
#define RNN_SPLAT_F16(s) \
    ((rnn_f16){(s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s)})
#define RNN_SPLAT_D8(s) ((rnn_d8){(s), (s), (s), (s), (s), (s), (s), (s)})
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define RNN_UNROLL _Pragma("GCC unroll 8")
#else
#define RNN_UNROLL
#endif

#if FB_X86_COPIES
#define RNN_LEVELS 3 /* the levels of fb_dispatch.h */
#else
#define RNN_LEVELS 1
#endif

#define RNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RNN_MAX(a, b) ((a) > (b) ? (a) : (b))

/* c[i][j] = q[i][j] + sum_p a[i][p] b[p][j] for i < MR and j < width, where
 * width <= 2 VL; a, q and c are row-major (a with stride lda, q and c with
 * ldc), b a packed panel (2 VL values per p). q may be c. */
#define RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, MR)                \
    static ATTR void NAME##_##MR(ptrdiff_t k, const T *a, ptrdiff_t lda,      \
                                 const T *b, const T *q, T *c, ptrdiff_t ldc, \
                                 int width)                                    \
    {                                                                          \
        VT acc0[MR], acc1[MR], b0, b1, s;                                      \
        T spill[2 * VL];                                                       \
        ptrdiff_t p;                                                           \
        int i, j;                                                              \
        /* q and c are cold (a new step's block): fetch them during the sums */ \
        for (i = 0; i < MR; i++) {                                             \
            RNN_PREFETCH(q + i * ldc);                                         \
            RNN_PREFETCH(q + i * ldc + width - 1);                             \
            RNN_PREFETCH(c + i * ldc);                                         \
            RNN_PREFETCH(c + i * ldc + width - 1);                             \
            acc0[i] = SPLAT((T)0);                                             \
            acc1[i] = acc0[i];                                                 \
        }                                                                      \
        for (p = 0; p < k; p++) {                                              \
            b0 = *(const VT_U *)(b + 2 * VL * p);                              \
            b1 = *(const VT_U *)(b + 2 * VL * p + VL);                         \
            RNN_UNROLL for (i = 0; i < MR; i++)                                \
            {                                                                  \
                s = SPLAT(a[i * lda + p]);                                     \
                acc0[i] += s * b0;                                             \
                acc1[i] += s * b1;                                             \
            }                                                                  \
        }                                                                      \
        if (width == 2 * VL) {                                                 \
            RNN_UNROLL for (i = 0; i < MR; i++)                                \
            {                                                                  \
                *(VT_U *)(c + i * ldc) = acc0[i] + *(const VT_U *)(q + i * ldc); \
                *(VT_U *)(c + i * ldc + VL) =                                  \
                    acc1[i] + *(const VT_U *)(q + i * ldc + VL);               \
            }                                                                  \
            return;                                                            \
        }                                                                      \
        for (i = 0; i < MR; i++) {                                             \
            *(VT_U *)spill = acc0[i];                                          \
            *(VT_U *)(spill + VL) = acc1[i];                                   \
            for (j = 0; j < width; j++) c[i * ldc + j] = spill[j] + q[i * ldc + j]; \
        }                                                                      \
    }

typedef void (*rnn_tile_f)(ptrdiff_t, const float *, ptrdiff_t, const float *,
                           const float *, float *, ptrdiff_t, int);
typedef void (*rnn_tile_d)(ptrdiff_t, const double *, ptrdiff_t, const double *,
                           const double *, double *, ptrdiff_t, int);

/* The tiles of 1..RNN_TILE_ROWS rows for one dtype and SIMD level. */
#define RNN_DEFINE_TILES(T, VT, VT_U, VL, SPLAT, NAME, ATTR)                   \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 1)                           \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 2)                           \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 3)                           \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 4)                           \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 5)                           \
    RNN_DEFINE_TILE(T, VT, VT_U, VL, SPLAT, NAME, ATTR, 6)

#define FB_NO_ATTR
RNN_DEFINE_TILES(float, rnn_f4, rnn_f4_u, RNN_LANES_F, RNN_SPLAT_F4, tile_f_base, FB_NO_ATTR)
RNN_DEFINE_TILES(double, rnn_d2, rnn_d2_u, RNN_LANES_D, RNN_SPLAT_D2, tile_d_base, FB_NO_ATTR)
#if FB_X86_COPIES
RNN_DEFINE_TILES(float, rnn_f8, rnn_f8_u, 8, RNN_SPLAT_F8, tile_f_avx2, FB_TARGET_AVX2)
RNN_DEFINE_TILES(double, rnn_d4, rnn_d4_u, 4, RNN_SPLAT_D4, tile_d_avx2, FB_TARGET_AVX2)
RNN_DEFINE_TILES(float, rnn_f16, rnn_f16_u, 16, RNN_SPLAT_F16, tile_f_avx512, FB_TARGET_AVX512)
RNN_DEFINE_TILES(double, rnn_d8, rnn_d8_u, 8, RNN_SPLAT_D8, tile_d_avx512, FB_TARGET_AVX512)
#endif

/* Each level's tiles (by height) and the width of their panels (2 vectors). */
#define RNN_TILE_TABLE(NAME) {NULL, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6}
static const rnn_tile_f tiles_f[RNN_LEVELS][RNN_TILE_ROWS + 1] = {
    RNN_TILE_TABLE(tile_f_base),
#if FB_X86_COPIES
    RNN_TILE_TABLE(tile_f_avx2),
    RNN_TILE_TABLE(tile_f_avx512),
#endif
};
static const rnn_tile_d tiles_d[RNN_LEVELS][RNN_TILE_ROWS + 1] = {
    RNN_TILE_TABLE(tile_d_base),
#if FB_X86_COPIES
    RNN_TILE_TABLE(tile_d_avx2),
    RNN_TILE_TABLE(tile_d_avx512),
#endif
};
#if FB_X86_COPIES
static const ptrdiff_t panel_f[RNN_LEVELS] = {2 * RNN_LANES_F, 16, 32};
static const ptrdiff_t panel_d[RNN_LEVELS] = {2 * RNN_LANES_D, 8, 16};
#else
static const ptrdiff_t panel_f[RNN_LEVELS] = {2 * RNN_LANES_F};
static const ptrdiff_t panel_d[RNN_LEVELS] = {2 * RNN_LANES_D};
#endif

/* Threads for a loop whose first (largest) step has `rows` rows: each keeps
 * at least RNN_MIN_ROWS of them. */
static int rnn_team_size(ptrdiff_t rows, int n, int n_threads)
{
    ptrdiff_t most = rows / RNN_MIN_ROWS;
    if (n_threads <= 1 || rows * (ptrdiff_t)n * n < RNN_PARALLEL_MIN || most < 2) return 1;
    return (int)RNN_MIN(n_threads, most);
}

/* The loop for one dtype: SUF f or d. `width` is the panel width of the
 * level's tiles. */
#define RNN_DEFINE_LOOP(T, SUF)                                                \
    /* Panel `panel` of B = W (transpose 0) or W^T: for each p,               \
     * B[p][panel*width .. panel*width + width), zero beyond column n. */      \
    static void pack_##SUF(const T *W, int n, int transpose, T *packed,        \
                           ptrdiff_t width, ptrdiff_t panel)                   \
    {                                                                          \
        ptrdiff_t p, j, col;                                                   \
        for (p = 0; p < n; p++)                                                \
            for (j = 0; j < width; j++) {                                      \
                col = panel * width + j;                                       \
                packed[(panel * n + p) * width + j] =                          \
                    col >= n ? (T)0 : transpose ? W[col * n + p] : W[p * n + col]; \
            }                                                                  \
    }                                                                          \
                                                                               \
    /* Rows [lo, hi) of one step: out = f(q + a @ B) where the row is below   \
     * nr, out = f(q) elsewhere; with h (backward), out = (q + a @ B) * f'(z) \
     * from h = f(z) instead. The sums go tile by tile (a panel by at most    \
     * RNN_TILE_ROWS rows), panel after panel; then the activation, row by    \
     * row, over rows still in cache. */                                       \
    static void step_##SUF(const T *a, const T *q, const T *h, T *out,        \
                           ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t nr,           \
                           const T *packed, ptrdiff_t width, int n, int act,   \
                           const rnn_tile_##SUF *tiles)                        \
    {                                                                          \
        const ptrdiff_t split = RNN_MAX(lo, RNN_MIN(nr, hi)); /* product rows end */ \
        /* as few tiles as can be, of as even heights as can be: a tile of \
         * 1 or 2 rows has too few sums in flight to keep the FMA units busy */ \
        const ptrdiff_t n_tiles = (split - lo + RNN_TILE_ROWS - 1) / RNN_TILE_ROWS; \
        ptrdiff_t c0, i, j, k0, r0, r1;                                        \
        int w;                                                                 \
        /* k in blocks of RNN_KC, so a panel's block stays in L1 across the   \
         * row tiles; the first block adds q, the next ones what is in out */ \
        for (k0 = 0; k0 < n; k0 += RNN_KC) {                                  \
            const ptrdiff_t kc = RNN_MIN(RNN_KC, n - k0);                      \
            for (c0 = 0; c0 < n; c0 += width) {                                \
                w = (int)RNN_MIN(width, n - c0);                               \
                for (j = 0; j < n_tiles; j++) {                                \
                    r0 = lo + (split - lo) * j / n_tiles;                      \
                    r1 = lo + (split - lo) * (j + 1) / n_tiles;                \
                    /* h is cold (a new step's block): fetch it while summing */ \
                    for (i = r0; h != NULL && k0 == 0 && i < r1; i++) {        \
                        RNN_PREFETCH(h + i * n + c0);                          \
                        RNN_PREFETCH(h + i * n + c0 + w - 1);                  \
                    }                                                          \
                    tiles[r1 - r0](kc, a + r0 * n + k0, n, packed + c0 * n + k0 * width, \
                                   (k0 == 0 ? q : out) + r0 * n + c0,          \
                                   out + r0 * n + c0, n, w);                   \
                }                                                              \
            }                                                                  \
        }                                                                      \
        /* whole rows, so that an element's place in the vector loop (body   \
         * or remainder) never depends on which thread has it */            \
        for (i = lo; i < hi; i++) {                                            \
            const T *src = i < split ? out : q;                                \
            if (h == NULL)                                                     \
                fastbp_act_##SUF(out + i * n, src + i * n, NULL, n, act);      \
            else                                                               \
                fastbp_dact_##SUF(out + i * n, src + i * n, NULL, h + i * n, n, act); \
        }                                                                      \
    }                                                                          \
                                                                               \
    /* On a cache line: every thread reads all of it at every step. */      \
    static T *alloc_packed_##SUF(int n, ptrdiff_t width, void **held)          \
    {                                                                          \
        const ptrdiff_t panels = (n + width - 1) / width;                      \
        return (T *)fb_alloc_lines((size_t)(panels * width) * (size_t)n * sizeof(T), held); \
    }                                                                          \
                                                                               \
    /* One time loop's arguments, shared by the units of fastbp's team. */    \
    typedef struct {                                                           \
        const T *x, *W, *h;                                                    \
        const ptrdiff_t *bs;                                                   \
        ptrdiff_t T_steps, n_rows, window, width;                              \
        T *out, *packed;                                                       \
        const rnn_tile_##SUF *tiles;                                           \
        int n, act, slices;                                                    \
    } rnn_loop_##SUF;                                                          \
                                                                               \
    static void pack_unit_##SUF(void *job, int panel, int slot)                \
    {                                                                          \
        const rnn_loop_##SUF *L = (const rnn_loop_##SUF *)job;                 \
        (void)slot;                                                            \
        pack_##SUF(L->W, L->n, L->h != NULL, L->packed, L->width, panel);      \
    }                                                                          \
                                                                               \
    /* Slice s of the sequences, through every step: step t continues them   \
     * in rows [lo, hi) of the step before (after), so no slice waits for     \
     * another. */                                                             \
    static void slice_unit_##SUF(void *job, int s, int slot)                   \
    {                                                                          \
        const rnn_loop_##SUF *L = (const rnn_loop_##SUF *)job;                 \
        const ptrdiff_t *bs = L->bs;                                           \
        const ptrdiff_t lo = bs[0] * s / L->slices, hi = bs[0] * (s + 1) / L->slices; \
        const int n = L->n;                                                    \
        ptrdiff_t t, nr, off, off_other;                                       \
        (void)slot;                                                            \
        if (L->h == NULL) {                                                    \
            for (t = 0, off = 0, off_other = 0; t < L->T_steps; t++) {         \
                /* every row of step t continues a row of step t-1 */          \
                nr = t == 0 ? 0 : bs[t];                                       \
                step_##SUF(L->out + off_other * n, L->x + off * n, NULL,       \
                           L->out + off * n, RNN_MIN(lo, bs[t]), RNN_MIN(hi, bs[t]), \
                           nr, L->packed, L->width, n, L->act, L->tiles);      \
                off_other = off;                                               \
                off += bs[t];                                                  \
            }                                                                  \
        } else {                                                               \
            for (t = L->T_steps - 1, off_other = L->n_rows; t >= 0; t--) {     \
                off = off_other - bs[t];                                       \
                /* rows that receive delta_{t+1} @ W^T: the sequences still   \
                 * running at t + 1, unless t + 1 starts a window */           \
                nr = 0;                                                        \
                if (t + 1 < L->T_steps && (L->window <= 0 || (t + 1) % L->window != 0)) \
                    nr = bs[t + 1];                                            \
                step_##SUF(L->out + off_other * n, L->x + off * n, L->h + off * n, \
                           L->out + off * n, RNN_MIN(lo, bs[t]), RNN_MIN(hi, bs[t]), \
                           nr, L->packed, L->width, n, L->act, L->tiles);      \
                off_other = off;                                               \
            }                                                                  \
        }                                                                      \
    }                                                                          \
                                                                               \
    /* Both directions of the loop. Forward (h NULL): out = H, x = P, step t  \
     * multiplies block t-1 of out by W. Backward (h = H): out = delta,         \
     * x = dH, step t multiplies block t+1 of out by W^T, from the last step   \
     * down, with nothing flowing into t where t + 1 starts a window. */       \
    static int time_loop_##SUF(const T *x, const T *W, const T *h,             \
                               const ptrdiff_t *bs, ptrdiff_t T_steps, int n,  \
                               ptrdiff_t n_rows, T *out, int act,              \
                               int n_threads, ptrdiff_t window)                \
    {                                                                          \
        const int level = RNN_MIN(fb_level(), RNN_LEVELS - 1);                 \
        const int nt = rnn_team_size(bs[0], n, n_threads);                     \
        rnn_loop_##SUF L;                                                      \
        void *held;                                                            \
        L.x = x; L.W = W; L.h = h; L.bs = bs; L.T_steps = T_steps;             \
        L.n_rows = n_rows; L.window = window; L.width = panel_##SUF[level];    \
        L.out = out; L.tiles = tiles_##SUF[level]; L.n = n; L.act = act;       \
        L.slices = nt;                                                         \
        L.packed = alloc_packed_##SUF(n, L.width, &held);                      \
        if (L.packed == NULL) return -1;                                       \
        fb_team_run(nt, (int)((n + L.width - 1) / L.width), pack_unit_##SUF, &L); \
        fb_team_run(nt, nt, slice_unit_##SUF, &L);                             \
        free(held);                                                            \
        return 0;                                                              \
    }                                                                          \
                                                                               \
    int fastbp_rnn_forward_##SUF(const T *P, const T *W, const ptrdiff_t *bs, \
                                 ptrdiff_t T_steps, int n, T *H, int act,      \
                                 int n_threads)                                \
    {                                                                          \
        return time_loop_##SUF(P, W, NULL, bs, T_steps, n, 0, H, act, n_threads, 0); \
    }                                                                          \
                                                                               \
    int fastbp_rnn_backward_##SUF(const T *H, const T *W, const ptrdiff_t *bs, \
                                  ptrdiff_t T_steps, int n, ptrdiff_t n_rows,  \
                                  const T *dH, T *delta, int act,              \
                                  int n_threads, ptrdiff_t window)             \
    {                                                                          \
        return time_loop_##SUF(dH, W, H, bs, T_steps, n, n_rows, delta, act,   \
                               n_threads, window);                             \
    }

RNN_DEFINE_LOOP(float, f)
RNN_DEFINE_LOOP(double, d)
