/* Direct 5x5 convolution and trainable 2x2 mean-pool kernels; see conv.h.
 *
 * Samples side by side
 * ---------------------
 * The convolutions run on blocks of BL samples (16 floats or 8 doubles, the
 * lanes of the dtype's widest vector) whose elements are interleaved: in a
 * copy with VL = BL lanes, a block's element p of sample l is at [p*BL + l],
 * so one vector holds the same position of BL samples. A 5x5 correlation is then a scalar
 * correlation with vectors for numbers: no lane is wasted on a plane's edges
 * (only a block's missing samples waste lanes), the kernels' loads are whole
 * aligned vectors (but on the one-sample path below), and each weight is
 * one broadcast. Each block is
 * transposed into that layout on entry and back on exit, VL x VL elements
 * at a time (in registers on x86; element by element in the portable copy). A copy with VL < BL lanes
 * keeps a block as BL / VL sub-blocks of VL samples, so that each of its
 * passes reads whole cache lines.
 *
 * Consecutive convolution and pooling layers can also hand their maps on
 * in this layout (conv.h's `layout` argument): a kernel then reads its
 * input, or writes its output, in place, and only the first layer's input
 * and the last one's output are transposed. The pooling kernels have a copy
 * for that layout (pool_fwd_lanes, pool_bwd_lanes) that sums in the same
 * order as their NCHW one.
 *
 * A sub-block costs the same with one sample as with VL, so the forward
 * pass on NCHW runs a block's last few samples (under 3/4 VL) one at a time on
 * "wide rows": the correlation of the flattened plane, VL consecutive
 * positions to a vector, the 4 columns past each row's end dropped. Its
 * outputs sum the same terms in the same order as a block's.
 *
 * A register tile holds R consecutive outputs of one row for G output maps
 * that share input maps (fastbp_plan_tiles): each input load feeds G
 * multiply-adds (G = 2, or 4 on AVX-512, which has 32 vector registers;
 * unshared input maps of a pair, as in LeCun's C3 table, feed one; on
 * AVX-512, tiles of one or two maps side by side load a kernel row's inputs
 * once for its five columns). The
 * weight gradient holds the 5 taps of a kernel row for G output maps of one
 * input map, over every position of the block's samples.
 *
 * The backward pass computes dX as a full correlation of dZ, padded by 4
 * zero columns on each side, with the rotated kernels; kernel rows that
 * would read above or below dZ are skipped. The bias and the activation (and
 * for dX the input activation's derivative, from X in the same layout) are
 * applied to a tile's maps while they are in cache.
 *
 * Each lane runs the same operations in the same order whatever the vector
 * width and the tiling: every output sums its input maps (shared ones first,
 * then its own), kernel rows and columns in order; a weight gradient sums
 * each sample's positions in order, then the block's samples in order. The
 * AVX2 and AVX-512 copies therefore agree bit for bit (the portable copy
 * does not fuse multiply-adds, so it may differ in the last bit).
 *
 * Instruction sets
 * ----------------
 * conv_kernels.h is a template of the kernels for one (dtype, instruction
 * set) pair, written with the lane operations of fb_lanes.h; this file
 * includes it once per pair, and conv_driver.h (allocation, the team's units,
 * fixed-order sums and the choice of a copy) once per dtype. The portable
 * kernels use GCC/Clang vector extensions (16-byte vectors, which the
 * compiler maps to SSE2 or NEON) or, elsewhere, plain scalars (1 lane); where
 * fb_dispatch.h compiles copies for x86-64, AVX2+FMA (8 floats a vector) and
 * AVX-512 (16) copies are compiled with target attributes, and each call
 * runs the one fb_level() names. No -march flag is needed.
 *
 * Determinism
 * -----------
 * Forward passes write disjoint outputs per sample. Gradients of the weights,
 * biases and pooling coefficients are summed per block of BL samples (in a
 * fixed order, by whichever thread runs the block) and the block sums are
 * added in block order, so results
 * are bitwise identical for any n_threads. With fewer blocks than threads, a
 * block's output maps (forward) or input maps (backward) are split into
 * shares, each a unit of its own: shares write disjoint outputs and
 * disjoint entries of the block's sums, so the split changes no result.
 * At most WAVE block sums are held at a time, which bounds memory.
 */
#include "fastbp_fp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastbp_omp.h"
#include "fb_alloc.h"
#include "fb_team.h"
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

#define FASTBP_RMAX 8    /* vectors of a register tile (forward, dX) */
/* Output maps of a tile (forward, dX) and of a weight-gradient pass for the
 * copy of instruction-set level `level`: 4 where it has 32 vector registers. */
#define FASTBP_TILE_GMAX(level) ((level) >= FB_LEVEL_AVX512 ? 4 : 2)
/* Samples of a convolution's block, side by side: the lanes of the dtype's
 * widest vector (a block's rows are then 64 bytes). */
#define FASTBP_BLOCK_LANES(f32) ((f32) ? 16 : 8)
#define FASTBP_WAVE 16   /* block sums held in memory at once */
#define FASTBP_XPAD 32   /* zero elements after the padded copy of a sample */

/* ---- tiles: output maps are computed in pairs (or fours) that share input maps ---- */

/* Output maps o .. o+G-1 of a tile. pool[s .. s+ns) are the input maps of
 * all of them, pool[a .. a+na) those of output o only, pool[b .. b+nb) those
 * of output o + 1 only (G == 2). A tile of G == 4 has na == nb == 0. */
typedef struct {
    int o, G, ns, na, nb, s, a, b;
} fastbp_tile_group;

/* Pair consecutive output maps that share at least one input map; with
 * gmax >= 4, two consecutive pairs whose four maps have the same input maps
 * then become one group of 4 (which leaves the order of every map's sum as
 * it was). Returns the number of groups. conn(o, i) = table[o, i], or
 * table[i, o] when transposed (outputs are then the input maps of the layer,
 * for dX). groups: room for one entry per output map; pool: room for
 * (outputs x inputs) ints. */
static int fastbp_plan_tiles(const unsigned char* table, int c_out, int c_in, int transposed,
                             int gmax, fastbp_tile_group* groups, int* pool)
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
        if (gmax >= 4 && ng >= 2 && g->G == 2 && g->na == 0 && g->nb == 0) {
            fastbp_tile_group* p = groups + (ng - 2); /* the group before g */
            if (p->G == 2 && p->na == 0 && p->nb == 0 && p->ns == g->ns &&
                memcmp(pool + p->s, pool + g->s, sizeof(int) * (size_t)g->ns) == 0) {
                p->G = 4; /* g's maps join p's; its pool entries are dropped */
                np = g->s;
                ng--;
            }
        }
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
        int layout;         /* FASTBP_BLOCKED_* bits: X, Y side by side */        \
    } conv_fwd_args_##SUF;                                                        \
    typedef struct {                                                              \
        const FT* X; const FT* dZ; FT* dX;                                        \
        const FT* wrot;     /* (c_in, c_out, 25): W rotated by 180 degrees */     \
        const fastbp_tile_group* groups; const int* pool; int ngroups; /* dX */   \
        const int* blist; const int* bn; /* input map -> its output maps */       \
        const int* pid;     /* (c_out, c_in) -> index of the connected pair */    \
        int n, c_in, h, w, c_out, act, npairs;                                    \
        int layout;         /* FASTBP_BLOCKED_*: X and dX, dZ side by side */     \
    } conv_bwd_args_##SUF;                                                        \
    typedef struct {                                                              \
        const FT* Y; const FT* coef; const FT* bias; const FT* dZ;                \
        FT* X; FT* dY;                                                            \
        int n, c, h, w, act;                                                      \
        int layout;         /* FASTBP_BLOCKED_*: Y and dY, X and dZ */            \
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

/* ---- kernels, once per (dtype, instruction set) ---- */

#define FB_LANES_F32 1
#define FB_LANES_ISA FB_LEVEL_PORTABLE
#include "conv_kernels.h"
#define FB_LANES_F32 0
#define FB_LANES_ISA FB_LEVEL_PORTABLE
#include "conv_kernels.h"
#if FB_X86_COPIES
#define FB_TEMPLATE "conv_kernels.h"
#include "fb_lanes_x86.h"
#undef FB_TEMPLATE
#endif

/* ---- entry points, once per dtype ---- */

/* Threads of an entry point's team over `units` units (each sizing its
 * per-thread scratch by it): n_threads, or 1 where the work is too small to
 * be `parallel`; at least 1 and at most `units`. */
static int fb_conv_team_size(int n_threads, int units, int parallel)
{
    int nt = n_threads < 1 || !parallel ? 1 : n_threads;
    if (nt > units)
        nt = units > 0 ? units : 1;
    return nt;
}

/* Pooling input elements from which the pooling passes run on a team: an
 * element costs several times an element-wise pass's (the activation of the
 * output, the derivative of the input's), so the team pays from fewer of
 * them than FASTBP_MIN_PARALLEL. */
#define FASTBP_POOL_MIN_PARALLEL (FASTBP_MIN_PARALLEL / 8)


static int fb_conv_forward_kind(int kind)
{
    return kind == FASTBP_CONV_FORWARD || kind == FASTBP_POOL_FORWARD;
}

int fastbp_conv_hands_on(const fastbp_conv_layer* a, const fastbp_conv_layer* b, int* c,
                         int* h, int* w)
{
    /* the maps a writes for the next layer: a forward pass's output, a
     * backward pass's input gradient */
    const int forward = fb_conv_forward_kind(a->kind);
    const int pool = a->kind == FASTBP_POOL_FORWARD;
    if (forward != fb_conv_forward_kind(b->kind))
        return 0;
    *c = forward ? a->c_out : a->c_in;
    *h = !forward ? a->h : pool ? a->h / 2 : a->h - 4;
    *w = !forward ? a->w : pool ? a->w / 2 : a->w - 4;
    if (forward)
        return a->output == b->input && (a->layout & FASTBP_BLOCKED_OUT) &&
               (b->layout & FASTBP_BLOCKED_IN) && *c == b->c_in && *h == b->h && *w == b->w;
    /* b's output gradient has b's output shape */
    return a->din != NULL && a->din == b->dout && (a->layout & FASTBP_BLOCKED_IN) &&
           (b->layout & FASTBP_BLOCKED_OUT) && *c == b->c_out &&
           *h == (b->kind == FASTBP_POOL_BACKWARD ? b->h / 2 : b->h - 4) &&
           *w == (b->kind == FASTBP_POOL_BACKWARD ? b->w / 2 : b->w - 4);
}

#define FB_LANES_F32 1
#include "conv_driver.h"
#define FB_LANES_F32 0
#include "conv_driver.h"
