/* Template of conv.c's entry points for one dtype: allocation, the units
 * of work shared by fastbp's team (fb_team.h), the fixed-order sums of the block gradients, and the choice of the
 * kernels' copy for the level in use (read once per call). conv.c includes
 * it once per dtype (no include guard), after defining FB_LANES_F32.
 */
#if FB_LANES_F32
#define FT float
#define EW(x) x##_f
#define VLMAX FASTBP_BLOCK_LANES(1) /* the widest vector of any copy: a block's samples */
#define ARGS(x) x##_f32
#define PORT(x) x##_f32_port
#define AVX2(x) x##_f32_avx2
#define AVX512(x) x##_f32_avx512
#define API(x) x##_f32
#else
#define FT double
#define EW(x) x##_d
#define VLMAX FASTBP_BLOCK_LANES(0)
#define ARGS(x) x##_f64
#define PORT(x) x##_f64_port
#define AVX2(x) x##_f64_avx2
#define AVX512(x) x##_f64_avx512
#define API(x) x##_f64
#endif

#if FB_X86_COPIES
#define CALL_ISA(level, fn, ...)                                   \
    ((level) >= FB_LEVEL_AVX512 ? AVX512(fn)(__VA_ARGS__)          \
     : (level) >= FB_LEVEL_AVX2 ? AVX2(fn)(__VA_ARGS__)            \
                                : PORT(fn)(__VA_ARGS__))
#else
#define CALL_ISA(level, fn, ...) ((void)(level), PORT(fn)(__VA_ARGS__))
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

/* A zero-padded copy of the last sample: conv_fwd_sample reads up to VL - 1
 * elements past a plane, which for the last plane of X would leave the array. */
static FT* API(fastbp_pad_last)(const FT* X, int n, ptrdiff_t sample)
{
    FT* xlast = (FT*)malloc(sizeof(FT) * (sample + FASTBP_XPAD));
    if (xlast != NULL) {
        memcpy(xlast, X + (ptrdiff_t)(n - 1) * sample, sizeof(FT) * sample);
        memset(xlast + sample, 0, sizeof(FT) * FASTBP_XPAD);
    }
    return xlast;
}

/* Units of fb_team_run: blocks of bsize samples (a convolution's forward
 * pass: all blocks at once, each in nsplit shares of its maps; a backward
 * pass: a wave of blocks, block wb + u writing its gradient sums to
 * part + u * plen). Each job names the level
 * read once by its call. */
typedef struct {
    const void* a; /* ARGS(conv_fwd_args), ARGS(conv_bwd_args) or ARGS(pool_args) */
    const void* a_half; /* conv_bwd_unit's on the AVX2 copy: its tile plan */
    FT *scratch, *part; /* scratch: ssize elements per slot */
    ptrdiff_t ssize, plen;
    int wb, n, bsize, nsplit, isa;
} API(block_job);

static void API(block_range)(const API(block_job)* j, int u, int* i0, int* i1)
{
    *i0 = (j->wb + u) * j->bsize;
    *i1 = *i0 + j->bsize < j->n ? *i0 + j->bsize : j->n;
}

/* Unit u: block u / nsplit, and the groups of output maps of its share
 * u % nsplit (the forward pass splits a block's maps into nsplit shares when
 * there are fewer blocks than threads and 2^20 multiply-adds or more; the
 * outputs are the same). */
static void API(conv_fwd_unit)(void* job, int u, int slot)
{
    const API(block_job)* j = (const API(block_job)*)job;
    const ARGS(conv_fwd_args)* a = (const ARGS(conv_fwd_args)*)j->a;
    const int share = u % j->nsplit;
    int i0, i1;
    API(block_range)(j, u / j->nsplit, &i0, &i1);
    CALL_ISA(j->isa, conv_fwd_block, a, i0, i1, share * a->ngroups / j->nsplit,
             (share + 1) * a->ngroups / j->nsplit, j->scratch + slot * j->ssize);
}

/* Unit u: block wb + u / nsplit, its input maps' share u % nsplit; the
 * shares of a block write disjoint entries of its part. */
static void API(conv_bwd_unit)(void* job, int u, int slot)
{
    const API(block_job)* j = (const API(block_job)*)job;
    const int block = u / j->nsplit;
    int i0, i1, isa = j->isa;
    API(block_range)(j, block, &i0, &i1);
    /* A block of at most half a vector's samples (a small batch, or a
     * batch's last block) runs on the AVX2 copy's half-width vectors: half
     * the cost, the same results (each lane's order does not depend on the
     * width). Not for arrays side by side: their sub-blocks are the level's. */
    if (isa >= FB_LEVEL_AVX512 && 2 * (i1 - i0) <= VLMAX &&
        ((const ARGS(conv_bwd_args)*)j->a)->layout == 0)
        isa = FB_LEVEL_AVX2;
    CALL_ISA(isa, conv_bwd_block,
             (const ARGS(conv_bwd_args)*)(isa == j->isa ? j->a : j->a_half), i0, i1,
             u % j->nsplit, j->nsplit, j->scratch + slot * j->ssize, j->part + block * j->plen);
}

/* Unit u: sample u (NCHW) or block u (side by side). */
static void API(pool_fwd_unit)(void* job, int u, int slot)
{
    const API(block_job)* j = (const API(block_job)*)job;
    const ARGS(pool_args)* a = (const ARGS(pool_args)*)j->a;
    int i0, i1;
    if (a->layout == 0) {
        CALL_ISA(j->isa, pool_fwd_sample, a, u);
        return;
    }
    API(block_range)(j, u, &i0, &i1);
    CALL_ISA(j->isa, pool_fwd_lanes, a, i0, i1, j->scratch + slot * j->ssize);
}

static void API(pool_bwd_unit)(void* job, int u, int slot)
{
    const API(block_job)* j = (const API(block_job)*)job;
    const ARGS(pool_args)* a = (const ARGS(pool_args)*)j->a;
    FT* const part = j->part + u * j->plen;
    int i0, i1;
    API(block_range)(j, u, &i0, &i1);
    if (a->layout == 0)
        CALL_ISA(j->isa, pool_bwd_block, a, i0, i1, j->scratch + slot * j->ssize, part);
    else
        CALL_ISA(j->isa, pool_bwd_lanes, a, i0, i1, j->scratch + slot * j->ssize, part);
}

/* All nblocks blocks, FASTBP_WAVE at a time (that bounds the memory of the
 * block sums), each wave's sums then added to total in block order: the
 * result is the same for any team size. */
static void API(block_waves)(int nt, int nblocks, fb_unit_fn unit, API(block_job)* j,
                             FT* total)
{
    ptrdiff_t k;
    int t;
    for (j->wb = 0; j->wb < nblocks; j->wb += FASTBP_WAVE) {
        const int nbw = nblocks - j->wb < FASTBP_WAVE ? nblocks - j->wb : FASTBP_WAVE;
        fb_team_run(nt, nbw * j->nsplit, unit, j);
        for (t = 0; t < nbw; t++)
            for (k = 0; k < j->plen; k++) total[k] += j->part[t * j->plen + k];
    }
}

int API(fastbp_conv5x5_forward)(const FT* X, const FT* W, const FT* b,
                                const unsigned char* table, FT* Y, int n, int c_in,
                                int h, int w, int c_out, int act, int layout, int n_threads)
{
    const int isa = fb_level();
    const ptrdiff_t plane = (ptrdiff_t)h * w, oplane = (ptrdiff_t)(h - 4) * (w - 4);
    const int nblocks = (n + VLMAX - 1) / VLMAX;
    /* per slot: the block's X, then a tile's output maps, side by side */
    const ptrdiff_t ssize = (c_in * plane + FASTBP_TILE_GMAX(isa) * oplane) * VLMAX;
    int nt, *pool;
    fastbp_tile_group* groups;
    void* scratch_mem;
    FT* xlast;
    ARGS(conv_fwd_args) a;
    API(block_job) job;
    if (n <= 0 || c_out <= 0)
        return 0;
    groups = (fastbp_tile_group*)malloc(sizeof(fastbp_tile_group) * ((size_t)c_out + 1));
    pool = (int*)malloc(sizeof(int) * ((size_t)c_out * c_in + 1));
    if (groups == NULL || pool == NULL) {
        free(groups); free(pool);
        return -1;
    }
    a.ngroups = fastbp_plan_tiles(table, c_out, c_in, 0, FASTBP_TILE_GMAX(isa), groups, pool);
    /* fewer blocks than threads: split each block's maps in shares too, when
     * the call's multiply-adds (taken as a full table's) pay for a team */
    job.nsplit = 1;
    if (n_threads > nblocks && a.ngroups > 1 &&
        (double)n * c_out * c_in * oplane * 25 >= (double)(1 << 20)) {
        job.nsplit = (n_threads + nblocks - 1) / nblocks;
        if (job.nsplit > a.ngroups)
            job.nsplit = a.ngroups;
    }
    nt = fb_conv_team_size(n_threads, nblocks * job.nsplit, 1);
    scratch_mem = malloc(sizeof(FT) * ssize * nt + FB_CACHE_LINE);
    /* the one-sample path (NCHW only) reads past a sample's plane */
    xlast = layout == 0 ? API(fastbp_pad_last)(X, n, c_in * plane) : NULL;
    if (scratch_mem == NULL || (layout == 0 && xlast == NULL)) {
        free(groups); free(pool); free(scratch_mem); free(xlast);
        return -1;
    }
    a.groups = groups; a.pool = pool;
    a.X = X; a.W = W; a.b = b; a.Y = Y; a.xlast = xlast;
    a.n = n; a.c_in = c_in; a.h = h; a.w = w; a.c_out = c_out; a.act = act;
    a.layout = layout;

    job.a = &a; job.scratch = (FT*)fb_line_start(scratch_mem); job.ssize = ssize;
    job.part = NULL; job.plen = 0;
    job.wb = 0; job.n = n; job.bsize = VLMAX; job.isa = isa;
    fb_team_run(nt, nblocks * job.nsplit, API(conv_fwd_unit), &job);

    free(groups); free(pool); free(scratch_mem); free(xlast);
    return 0;
}

int API(fastbp_conv5x5_backward)(const FT* X, const FT* W, const FT* dZ,
                                 const unsigned char* table, FT* grad_W, FT* grad_b,
                                 FT* dX, int n, int c_in, int h, int w, int c_out,
                                 int in_act, int layout, int n_threads)
{
    const int isa = fb_level();
    const int ho = h - 4;
    const ptrdiff_t plane = (ptrdiff_t)h * w, oplane = (ptrdiff_t)ho * (w - 4);
    const int nblocks = (n + VLMAX - 1) / VLMAX;
    /* fewer blocks than threads: split each block's input maps in shares
     * too, when the call's multiply-adds (taken as a full table's) pay */
    const int nsplit = n_threads > nblocks && c_in > 1 &&
                               (double)n * c_out * c_in * oplane * 25 >= (double)(1 << 20)
                           ? ((n_threads + nblocks - 1) / nblocks < c_in
                                  ? (n_threads + nblocks - 1) / nblocks
                                  : c_in)
                           : 1;
    const int nt = fb_conv_team_size(n_threads, nblocks * nsplit, 1);
    int npairs, pair, co, ci, k;
    int *lists, *blist, *bn, *pid, *pool;
    fastbp_tile_group* groups;
    ptrdiff_t ng, plen, ssize, j;
    FT *wrot = NULL, *part = NULL, *total = NULL;
    void* scratch_mem = NULL;
    ARGS(conv_bwd_args) a, a_half;
    API(block_job) job;

    /* blist (c_in, c_out), bn (c_in), pid (c_out, c_in), pool (c_in, c_out), and
     * the AVX2 copy's pool (c_in, c_out); groups: room for two plans */
    lists = (int*)malloc(sizeof(int) * (4 * (size_t)c_out * c_in + c_in + 1));
    groups = (fastbp_tile_group*)malloc(sizeof(fastbp_tile_group) * (2 * (size_t)c_in + 1));
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
    /* per slot, side by side: the block's X and dZ, its per-sample gradient
     * sums, and for dX the padded dZ and a tile's maps (conv_bwd_block) */
    ssize = (c_in * plane + c_out * oplane + plen) * VLMAX;
    if (dX != NULL)
        ssize += (c_out * ho * (ptrdiff_t)(w + 4) + FASTBP_TILE_GMAX(isa) * plane) * VLMAX;

    if (n > 0) {
        wrot = (FT*)malloc(sizeof(FT) * ((size_t)c_in * c_out * 25 + 1));
        scratch_mem = malloc(sizeof(FT) * ssize * nt + FB_CACHE_LINE);
        part = (FT*)malloc(sizeof(FT) * plen * FASTBP_WAVE);
    }
    total = (FT*)malloc(sizeof(FT) * plen);
    if (total == NULL || (n > 0 && (wrot == NULL || scratch_mem == NULL || part == NULL))) {
        free(lists); free(groups); free(wrot); free(scratch_mem); free(part); free(total);
        return -1;
    }
    for (j = 0; j < plen; j++) total[j] = 0;

    if (n > 0) {
        for (ci = 0; ci < c_in; ci++)
            for (co = 0; co < c_out; co++)
                for (k = 0; k < 25; k++)
                    wrot[((ptrdiff_t)ci * c_out + co) * 25 + k] =
                        W[((ptrdiff_t)co * c_in + ci) * 25 + 24 - k];
        a.X = X; a.dZ = dZ; a.dX = dX; a.wrot = wrot;
        a.ngroups = fastbp_plan_tiles(table, c_out, c_in, 1, FASTBP_TILE_GMAX(isa), groups,
                                      pool);
        a.groups = groups; a.pool = pool; a.blist = blist; a.bn = bn;
        a.n = n; a.c_in = c_in; a.h = h; a.w = w; a.c_out = c_out; a.act = in_act;
        a.pid = pid; a.npairs = npairs; a.layout = layout;
        a_half = a;
        if (isa >= FB_LEVEL_AVX512) {
            a_half.groups = groups + c_in;
            a_half.pool = pool + (ptrdiff_t)c_out * c_in;
            a_half.ngroups = fastbp_plan_tiles(table, c_out, c_in, 1,
                                               FASTBP_TILE_GMAX(FB_LEVEL_AVX2),
                                               groups + c_in, pool + (ptrdiff_t)c_out * c_in);
        }

        job.a = &a; job.a_half = &a_half; job.scratch = (FT*)fb_line_start(scratch_mem); job.part = part;
        job.ssize = ssize; job.plen = plen; job.n = n; job.bsize = VLMAX;
        job.nsplit = nsplit; job.isa = isa;
        API(block_waves)(nt, nblocks, API(conv_bwd_unit), &job, total);
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

    free(lists); free(groups); free(wrot); free(scratch_mem); free(part); free(total);
    return 0;
}

int API(fastbp_pool2x2_forward)(const FT* Y, const FT* coef, const FT* bias, FT* X,
                                int n, int c, int h, int w, int act, int layout,
                                int n_threads)
{
    const int isa = fb_level();
    const int units = layout ? (n + VLMAX - 1) / VLMAX : n;
    const int nt = fb_conv_team_size(n_threads, units,
                                     (ptrdiff_t)n * c * h * w >= FASTBP_POOL_MIN_PARALLEL);
    /* per slot, side by side to NCHW: the block's outputs */
    const ptrdiff_t ssize = layout == FASTBP_BLOCKED_IN ? (ptrdiff_t)c * (h / 2) * (w / 2) * VLMAX
                                                        : 0;
    void* scratch_mem = ssize > 0 ? malloc(sizeof(FT) * ssize * nt + FB_CACHE_LINE) : NULL;
    ARGS(pool_args) a;
    API(block_job) job;
    if (ssize > 0 && scratch_mem == NULL)
        return -1;
    a.Y = Y; a.coef = coef; a.bias = bias; a.dZ = NULL; a.X = X; a.dY = NULL;
    a.n = n; a.c = c; a.h = h; a.w = w; a.act = act; a.layout = layout;
    job.a = &a; job.isa = isa; job.wb = 0; job.n = n; job.bsize = VLMAX;
    job.scratch = (FT*)fb_line_start(scratch_mem); job.ssize = ssize;
    fb_team_run(nt, units, API(pool_fwd_unit), &job);
    free(scratch_mem);
    return 0;
}

int API(fastbp_pool2x2_backward)(const FT* Y, const FT* coef, const FT* dZ,
                                 FT* grad_coef, FT* grad_bias, FT* dY, int n, int c,
                                 int h, int w, int in_act, int layout, int n_threads)
{
    const int isa = fb_level();
    const int nblocks = (n + VLMAX - 1) / VLMAX;
    /* per slot: NCHW, the expanded gradient; side by side, the samples'
     * sums and dZ (pool_bwd_lanes) */
    const ptrdiff_t tsize = layout ? 2 * (ptrdiff_t)c * VLMAX + (ptrdiff_t)c * (h / 2) * (w / 2) * VLMAX
                                   : (ptrdiff_t)c * h * w;
    const ptrdiff_t plen = 2 * (ptrdiff_t)c;
    const int nt = fb_conv_team_size(n_threads, nblocks,
                                     (ptrdiff_t)n * c * h * w >= FASTBP_POOL_MIN_PARALLEL);
    int ch;
    ptrdiff_t j;
    FT *part, *total;
    void* tbuf;
    ARGS(pool_args) a;
    API(block_job) job;
    tbuf = malloc(sizeof(FT) * tsize * nt + FB_CACHE_LINE);
    part = (FT*)malloc(sizeof(FT) * (plen * FASTBP_WAVE + 1));
    total = (FT*)malloc(sizeof(FT) * (plen + 1));
    if (tbuf == NULL || part == NULL || total == NULL) {
        free(tbuf); free(part); free(total);
        return -1;
    }
    for (j = 0; j < plen; j++) total[j] = 0;
    a.Y = Y; a.coef = coef; a.bias = NULL; a.dZ = dZ; a.X = NULL; a.dY = dY;
    a.n = n; a.c = c; a.h = h; a.w = w; a.act = in_act; a.layout = layout;
    job.a = &a; job.scratch = (FT*)fb_line_start(tbuf); job.part = part; job.ssize = tsize;
    job.plen = plen; job.n = n; job.bsize = VLMAX; job.nsplit = 1; job.isa = isa;
    API(block_waves)(nt, nblocks, API(pool_bwd_unit), &job, total);
    for (ch = 0; ch < c; ch++) {
        grad_coef[ch] = total[ch];
        grad_bias[ch] = total[c + ch];
    }
    free(tbuf); free(part); free(total);
    return 0;
}

void API(fastbp_blocks)(FT* blk, FT* nchw, int n, ptrdiff_t P, int to)
{
    const int isa = fb_level();
    int i0;
    for (i0 = 0; i0 < n; i0 += VLMAX)
        CALL_ISA(isa, block_transpose, blk + i0 * P, nchw + i0 * P,
                 n - i0 < VLMAX ? n - i0 : VLMAX, P, to);
}

#undef CALL_ISA
#undef FT
#undef EW
#undef VLMAX
#undef ARGS
#undef PORT
#undef AVX2
#undef AVX512
#undef API
#undef FB_LANES_F32
