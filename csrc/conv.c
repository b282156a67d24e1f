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
 * The AVX-512 copy has 32 vector registers instead of 16: there, two
 * consecutive pairs whose four maps read exactly the same input maps (any
 * full table) form one tile of 4 x 6 vectors, and the weight gradient runs
 * over four output maps of an input map at a time, so each load feeds four
 * FMAs. Each accumulator still receives the same multiply-adds in the same
 * order (and the tiles cover the same vectors), so the results are bitwise
 * those of the tiles of two.
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
 * biases and pooling coefficients are summed per block of BLOCK samples (in a
 * fixed order, by whichever thread runs the block) and the block sums are
 * added in block order, so results are bitwise identical for any n_threads.
 * At most WAVE block sums are held at a time, which bounds memory.
 */
#include "fastbp_fp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastbp_omp.h"
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
#define FASTBP_BLOCK 8   /* samples per gradient block */
#define FASTBP_WAVE 16   /* block sums held in memory at once */
#define FASTBP_XPAD 32   /* zero elements after the padded copy of a sample */
#define FASTBP_ALIGN_PAD 16 /* room to shift a buffer to vector alignment (elements) */

/* The first 64-byte boundary at or after p (p from malloc with 64 bytes spare). */
static void* fastbp_align64(void* p)
{
    return p == NULL ? NULL : (void*)(((size_t)p + 63) & ~(size_t)63);
}

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
            fastbp_tile_group* p = g - 1;
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


#define FB_LANES_F32 1
#include "conv_driver.h"
#define FB_LANES_F32 0
#include "conv_driver.h"
