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

/* The wave's nbw block sums (part) added to total in block order. */
static void API(add_parts)(const API(block_job)* j, int nbw, FT* total)
{
    ptrdiff_t k;
    int t;
    for (t = 0; t < nbw; t++)
        for (k = 0; k < j->plen; k++) total[k] += j->part[t * j->plen + k];
}

/* All nblocks blocks, FASTBP_WAVE at a time (that bounds the memory of the
 * block sums), each wave's sums then added to total in block order: the
 * result is the same for any team size. */
static void API(block_waves)(int nt, int nblocks, fb_unit_fn unit, API(block_job)* j,
                             FT* total)
{
    for (j->wb = 0; j->wb < nblocks; j->wb += FASTBP_WAVE) {
        const int nbw = nblocks - j->wb < FASTBP_WAVE ? nblocks - j->wb : FASTBP_WAVE;
        fb_team_run(nt, nbw * j->nsplit, unit, j);
        API(add_parts)(j, nbw, total);
    }
}

/* One layer's call made ready to run: its checked-in arguments, its job and
 * unit, its gradient sums and what it allocated. A *_prepare function fills
 * it (0, or -1 when memory runs out; layer_release frees what was allocated
 * either way), layer_run runs it alone, and a stack (fastbp_conv_stack) runs
 * several block by block. Its scratch has a slot for each thread of a team
 * of up to min(n_threads, units). It points into itself: it stays where it
 * was prepared. */
typedef struct {
    ARGS(conv_fwd_args) conv_fwd;
    ARGS(conv_bwd_args) conv_bwd, conv_bwd_half;
    ARGS(pool_args) pool;
    API(block_job) job;
    fb_unit_fn unit;    /* NULL: no unit to run (no samples) */
    int kind;           /* FASTBP_CONV_FORWARD, ... */
    int nblocks;        /* blocks of samples */
    int units, nt;      /* the units and the team of the layer run alone */
    FT* total;          /* the gradient sums (backward passes): job.plen entries */
    /* where the sums go */
    const unsigned char* table;
    FT *grad_w, *grad_b;
    int c_in, c_out;
    void* mem[6];       /* what layer_release frees */
} API(layer_run);

static void API(layer_init)(API(layer_run)* r, int kind, int n)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->nblocks = (n + VLMAX - 1) / VLMAX;
    r->job.n = n;
    r->job.bsize = VLMAX;
    r->job.nsplit = 1;
    r->job.isa = fb_level();
}

/* Per-thread scratch of ssize elements a slot, for a team over `units`
 * units; NULL when memory runs out (or ssize is 0). */
static FT* API(layer_scratch)(API(layer_run)* r, ptrdiff_t ssize, int n_threads, int units)
{
    const int slots = fb_conv_team_size(n_threads, units, 1);
    r->job.ssize = ssize;
    r->mem[0] = ssize > 0 ? malloc(sizeof(FT) * ssize * slots + FB_CACHE_LINE) : NULL;
    r->job.scratch = (FT*)fb_line_start(r->mem[0]);
    return r->job.scratch;
}

/* The gradient sums: plen entries zeroed, and room for a wave's block sums. */
static int API(layer_sums)(API(layer_run)* r, ptrdiff_t plen)
{
    ptrdiff_t k;
    r->job.plen = plen;
    r->total = (FT*)(r->mem[1] = malloc(sizeof(FT) * (plen + 1)));
    r->job.part = (FT*)(r->mem[2] = malloc(sizeof(FT) * (plen * FASTBP_WAVE + 1)));
    if (r->total == NULL || r->job.part == NULL)
        return -1;
    for (k = 0; k < plen; k++) r->total[k] = 0;
    return 0;
}

static void API(layer_release)(API(layer_run)* r)
{
    size_t k;
    for (k = 0; k < sizeof(r->mem) / sizeof(r->mem[0]); k++) free(r->mem[k]);
}

static int API(conv_fwd_prepare)(API(layer_run)* r, const fastbp_conv_layer* l, int n,
                                 int n_threads)
{
    const FT *X = (const FT*)l->input, *W = (const FT*)l->weight, *b = (const FT*)l->bias;
    const unsigned char* table = l->table;
    const int c_in = l->c_in, h = l->h, w = l->w, c_out = l->c_out, layout = l->layout;
    const int isa = fb_level();
    const ptrdiff_t plane = (ptrdiff_t)h * w, oplane = (ptrdiff_t)(h - 4) * (w - 4);
    /* per slot: the block's X, then a tile's output maps, side by side */
    const ptrdiff_t ssize = (c_in * plane + FASTBP_TILE_GMAX(isa) * oplane) * VLMAX;
    ARGS(conv_fwd_args)* const a = &r->conv_fwd;
    fastbp_tile_group* groups;
    int* pool;
    API(layer_init)(r, FASTBP_CONV_FORWARD, n);
    if (n <= 0 || c_out <= 0)
        return 0;
    groups = (fastbp_tile_group*)(r->mem[3] =
                                      malloc(sizeof(fastbp_tile_group) * ((size_t)c_out + 1)));
    pool = (int*)(r->mem[4] = malloc(sizeof(int) * ((size_t)c_out * c_in + 1)));
    if (groups == NULL || pool == NULL)
        return -1;
    a->ngroups = fastbp_plan_tiles(table, c_out, c_in, 0, FASTBP_TILE_GMAX(isa), groups, pool);
    /* fewer blocks than threads: split each block's maps in shares too, when
     * the call's multiply-adds (taken as a full table's) pay for a team */
    if (n_threads > r->nblocks && a->ngroups > 1 &&
        (double)n * c_out * c_in * oplane * 25 >= (double)(1 << 20)) {
        r->job.nsplit = (n_threads + r->nblocks - 1) / r->nblocks;
        if (r->job.nsplit > a->ngroups)
            r->job.nsplit = a->ngroups;
    }
    r->units = r->nblocks * r->job.nsplit;
    r->nt = fb_conv_team_size(n_threads, r->units, 1);
    /* the one-sample path (NCHW only) reads past a sample's plane */
    if (layout == 0 && (r->mem[5] = API(fastbp_pad_last)(X, n, c_in * plane)) == NULL)
        return -1;
    if (API(layer_scratch)(r, ssize, n_threads, r->units) == NULL)
        return -1;
    a->groups = groups; a->pool = pool;
    a->X = X; a->W = W; a->b = b; a->xlast = (const FT*)r->mem[5];
    a->Y = (FT*)l->output;
    a->n = n; a->c_in = c_in; a->h = h; a->w = w; a->c_out = c_out; a->act = l->act;
    a->layout = layout;
    r->job.a = a;
    r->unit = API(conv_fwd_unit);
    return 0;
}

static int API(conv_bwd_prepare)(API(layer_run)* r, const fastbp_conv_layer* l, int n,
                                 int n_threads)
{
    const FT* W = (const FT*)l->weight;
    const unsigned char* table = l->table;
    const int c_in = l->c_in, h = l->h, w = l->w, c_out = l->c_out;
    const int isa = fb_level();
    const int ho = h - 4;
    const ptrdiff_t plane = (ptrdiff_t)h * w, oplane = (ptrdiff_t)ho * (w - 4);
    ARGS(conv_bwd_args)* const a = &r->conv_bwd;
    int npairs, co, ci, k;
    int *blist, *bn, *pid, *pool;
    fastbp_tile_group* groups;
    ptrdiff_t ssize;
    FT* wrot;

    API(layer_init)(r, FASTBP_CONV_BACKWARD, n);
    r->table = table; r->grad_w = (FT*)l->grad_weight; r->grad_b = (FT*)l->grad_bias;
    r->c_in = c_in; r->c_out = c_out;
    /* fewer blocks than threads: split each block's input maps in shares
     * too, when the call's multiply-adds (taken as a full table's) pay */
    if (n_threads > r->nblocks && c_in > 1 &&
        (double)n * c_out * c_in * oplane * 25 >= (double)(1 << 20))
        r->job.nsplit = (n_threads + r->nblocks - 1) / r->nblocks < c_in
                            ? (n_threads + r->nblocks - 1) / r->nblocks
                            : c_in;
    r->units = r->nblocks * r->job.nsplit;
    r->nt = fb_conv_team_size(n_threads, r->units, 1);

    /* blist (c_in, c_out), bn (c_in), pid (c_out, c_in), pool (c_in, c_out), and
     * the AVX2 copy's pool (c_in, c_out); groups: room for two plans */
    blist = (int*)(r->mem[3] = malloc(sizeof(int) * (4 * (size_t)c_out * c_in + c_in + 1)));
    groups = (fastbp_tile_group*)(r->mem[4] =
                                      malloc(sizeof(fastbp_tile_group) * (2 * (size_t)c_in + 1)));
    if (blist == NULL || groups == NULL)
        return -1;
    bn = blist + (ptrdiff_t)c_out * c_in;
    pid = bn + c_in;
    pool = pid + (ptrdiff_t)c_out * c_in;
    API(fastbp_conv_lists)(table, c_out, c_in, 1, blist, bn);
    for (co = 0, npairs = 0; co < c_out; co++)
        for (ci = 0; ci < c_in; ci++)
            pid[co * c_in + ci] = table[co * c_in + ci] ? npairs++ : -1;
    if (API(layer_sums)(r, (ptrdiff_t)npairs * 25 + c_out) < 0)
        return -1;
    if (n <= 0)
        return 0;
    /* per slot, side by side: the block's X and dZ, its per-sample gradient
     * sums, and for dX the padded dZ and a tile's maps (conv_bwd_block) */
    ssize = (c_in * plane + c_out * oplane + r->job.plen) * VLMAX;
    if (l->din != NULL)
        ssize += (c_out * ho * (ptrdiff_t)(w + 4) + FASTBP_TILE_GMAX(isa) * plane) * VLMAX;
    wrot = (FT*)(r->mem[5] = malloc(sizeof(FT) * ((size_t)c_in * c_out * 25 + 1)));
    if (wrot == NULL || API(layer_scratch)(r, ssize, n_threads, r->units) == NULL)
        return -1;
    for (ci = 0; ci < c_in; ci++)
        for (co = 0; co < c_out; co++)
            for (k = 0; k < 25; k++)
                wrot[((ptrdiff_t)ci * c_out + co) * 25 + k] =
                    W[((ptrdiff_t)co * c_in + ci) * 25 + 24 - k];
    a->X = (const FT*)l->input; a->dZ = (const FT*)l->dout; a->dX = (FT*)l->din;
    a->wrot = wrot;
    a->ngroups = fastbp_plan_tiles(table, c_out, c_in, 1, FASTBP_TILE_GMAX(isa), groups, pool);
    a->groups = groups; a->pool = pool; a->blist = blist; a->bn = bn;
    a->n = n; a->c_in = c_in; a->h = h; a->w = w; a->c_out = c_out; a->act = l->act;
    a->pid = pid; a->npairs = npairs; a->layout = l->layout;
    r->conv_bwd_half = *a;
    if (isa >= FB_LEVEL_AVX512) {
        r->conv_bwd_half.groups = groups + c_in;
        r->conv_bwd_half.pool = pool + (ptrdiff_t)c_out * c_in;
        r->conv_bwd_half.ngroups = fastbp_plan_tiles(
            table, c_out, c_in, 1, FASTBP_TILE_GMAX(FB_LEVEL_AVX2), groups + c_in,
            pool + (ptrdiff_t)c_out * c_in);
    }
    r->job.a = a;
    r->job.a_half = &r->conv_bwd_half;
    r->unit = API(conv_bwd_unit);
    return 0;
}

/* A pooling pass: forward, X from Y; backward, the sums and dY. */
static int API(pool_prepare)(API(layer_run)* r, const fastbp_conv_layer* l, int n, int n_threads)
{
    ARGS(pool_args)* const a = &r->pool;
    const int forward = l->kind == FASTBP_POOL_FORWARD;
    const int c = l->c_in, h = l->h, w = l->w, layout = l->layout;
    const ptrdiff_t pooled = (ptrdiff_t)c * (h / 2) * (w / 2) * VLMAX;
    /* per slot: forward, side by side to NCHW, the block's outputs;
     * backward, on NCHW the expanded gradient, side by side the samples'
     * sums and dZ (pool_bwd_lanes) */
    const ptrdiff_t ssize = forward ? (layout == FASTBP_BLOCKED_IN ? pooled : 0)
                                    : layout ? 2 * (ptrdiff_t)c * VLMAX + pooled
                                             : (ptrdiff_t)c * h * w;
    API(layer_init)(r, l->kind, n);
    r->units = forward && !layout ? n : r->nblocks;
    r->nt = fb_conv_team_size(n_threads, r->units,
                              (ptrdiff_t)n * c * h * w >= FASTBP_POOL_MIN_PARALLEL);
    if (!forward) {
        r->grad_w = (FT*)l->grad_weight; r->grad_b = (FT*)l->grad_bias; r->c_in = r->c_out = c;
        if (API(layer_sums)(r, 2 * (ptrdiff_t)c) < 0)
            return -1;
    }
    if (n <= 0)
        return 0;
    if (API(layer_scratch)(r, ssize, n_threads, r->units) == NULL && ssize > 0)
        return -1;
    a->Y = (const FT*)l->input; a->coef = (const FT*)l->weight; a->bias = (const FT*)l->bias;
    a->dZ = (const FT*)l->dout; a->X = (FT*)l->output; a->dY = (FT*)l->din;
    a->n = n; a->c = c; a->h = h; a->w = w; a->act = l->act; a->layout = layout;
    r->job.a = a;
    r->unit = forward ? API(pool_fwd_unit) : API(pool_bwd_unit);
    return 0;
}

/* A backward pass's sums into its gradient arrays (zero without samples). */
static void API(layer_finish)(const API(layer_run)* r)
{
    int co, ci, pair = 0;
    if (r->total == NULL)
        return;
    if (r->kind == FASTBP_POOL_BACKWARD) {
        for (co = 0; co < r->c_out; co++) {
            r->grad_w[co] = r->total[co];
            r->grad_b[co] = r->total[r->c_out + co];
        }
        return;
    }
    memset(r->grad_w, 0, sizeof(FT) * (size_t)r->c_out * r->c_in * 25);
    for (co = 0; co < r->c_out; co++)
        for (ci = 0; ci < r->c_in; ci++)
            if (r->table[co * r->c_in + ci]) {
                memcpy(r->grad_w + ((ptrdiff_t)co * r->c_in + ci) * 25, r->total + pair * 25,
                       sizeof(FT) * 25);
                pair++;
            }
    for (co = 0; co < r->c_out; co++) r->grad_b[co] = r->total[(ptrdiff_t)pair * 25 + co];
}

/* Run a prepared layer alone, on its own team. */
static void API(layer_run_alone)(API(layer_run)* r)
{
    if (r->unit != NULL) {
        if (r->total != NULL)
            API(block_waves)(r->nt, r->nblocks, r->unit, &r->job, r->total);
        else
            fb_team_run(r->nt, r->units, r->unit, &r->job);
    }
    API(layer_finish)(r);
}

/* Prepare a layer from its description. */
static int API(layer_prepare)(API(layer_run)* r, const fastbp_conv_layer* l, int n,
                              int n_threads)
{
    if (l->kind == FASTBP_CONV_FORWARD)
        return API(conv_fwd_prepare)(r, l, n, n_threads);
    if (l->kind == FASTBP_CONV_BACKWARD)
        return API(conv_bwd_prepare)(r, l, n, n_threads);
    return API(pool_prepare)(r, l, n, n_threads);
}

/* Prepare, run alone and release one layer. */
static int API(layer_call)(const fastbp_conv_layer* l, int n, int n_threads)
{
    API(layer_run) r;
    const int status = API(layer_prepare)(&r, l, n, n_threads);
    if (status == 0)
        API(layer_run_alone)(&r);
    API(layer_release)(&r);
    return status;
}

typedef struct {
    API(layer_run)* runs;
    int count;
    /* local links: link k (what layer k writes for layer k + 1) of a slot at
     * links + slot * slot_size + link_at[k]; link_at[k] < 0: in its array */
    FT* links;
    ptrdiff_t slot_size;
    ptrdiff_t* link_at;
} API(stack_job);

/* Block u of a layer, reading its input (a backward pass: its output's
 * gradient) from `reads` and writing its output (its input's gradient) to
 * `writes` where they are not NULL (one block's maps, side by side), else
 * from and to its arrays. The unit runs on a copy of the job whose arrays
 * start at the block's first sample. */
static void API(unit_local)(const API(layer_run)* r, int u, int slot, const FT* reads,
                            FT* writes)
{
    API(block_job) j = r->job;
    ARGS(conv_fwd_args) cf;
    ARGS(conv_bwd_args) cb, cb_half;
    ARGS(pool_args) p;
    ptrdiff_t in_at, out_at; /* the block's first element in and out */
    int i0, i1;
    API(block_range)(&r->job, u, &i0, &i1);
    j.wb = 0;
    j.n = i1 - i0;
    if (j.part != NULL)
        j.part += (ptrdiff_t)u * j.plen;
    switch (r->kind) {
    case FASTBP_CONV_FORWARD:
        cf = r->conv_fwd;
        in_at = (ptrdiff_t)i0 * cf.c_in * cf.h * cf.w;
        out_at = (ptrdiff_t)i0 * cf.c_out * (cf.h - 4) * (cf.w - 4);
        cf.X = reads != NULL ? reads : cf.X + in_at;
        cf.Y = writes != NULL ? writes : cf.Y + out_at;
        cf.n = j.n;
        j.a = &cf;
        break;
    case FASTBP_CONV_BACKWARD:
        cb = r->conv_bwd;
        in_at = (ptrdiff_t)i0 * cb.c_in * cb.h * cb.w;
        out_at = (ptrdiff_t)i0 * cb.c_out * (cb.h - 4) * (cb.w - 4);
        cb.X += in_at;
        cb.dZ = reads != NULL ? reads : cb.dZ + out_at;
        cb.dX = writes != NULL ? writes : cb.dX != NULL ? cb.dX + in_at : NULL;
        cb.n = j.n;
        cb_half = r->conv_bwd_half;
        cb_half.X = cb.X; cb_half.dZ = cb.dZ; cb_half.dX = cb.dX; cb_half.n = j.n;
        j.a = &cb;
        j.a_half = &cb_half;
        break;
    default:
        p = r->pool;
        in_at = (ptrdiff_t)i0 * p.c * p.h * p.w;
        out_at = in_at / 4;
        p.n = j.n;
        if (r->kind == FASTBP_POOL_FORWARD) {
            p.Y = reads != NULL ? reads : p.Y + in_at;
            p.X = writes != NULL ? writes : p.X + out_at;
        } else {
            p.Y += in_at;
            p.dZ = reads != NULL ? reads : p.dZ + out_at;
            p.dY = writes != NULL ? writes : p.dY != NULL ? p.dY + in_at : NULL;
        }
        j.a = &p;
    }
    r->unit(&j, 0, slot);
}

/* Unit u of a stack: block u of each layer in turn (a block's maps stay in
 * its thread's caches from one layer to the next). */
static void API(stack_unit)(void* job, int u, int slot)
{
    const API(stack_job)* s = (const API(stack_job)*)job;
    FT* const local = s->links != NULL ? s->links + slot * s->slot_size : NULL;
    int k;
    for (k = 0; k < s->count; k++) {
        FT* const writes = local != NULL && k + 1 < s->count && s->link_at[k] >= 0
                               ? local + s->link_at[k] : NULL;
        const FT* const reads = local != NULL && k > 0 && s->link_at[k - 1] >= 0
                                    ? local + s->link_at[k - 1] : NULL;
        if (writes == NULL && reads == NULL)
            s->runs[k].unit(&s->runs[k].job, u, slot);
        else
            API(unit_local)(s->runs + k, u, slot, reads, writes);
    }
}

/* Where the links of a stack go in a slot of local links (link_at[k], -1
 * for none): what each layer hands on side by side to the next, a block of
 * it. Returns the elements of a slot. */
static ptrdiff_t API(plan_links)(const fastbp_conv_layer* layers, int count, ptrdiff_t* link_at)
{
    ptrdiff_t size = 0;
    int k, c, h, w;
    for (k = 0; k < count; k++) {
        link_at[k] = -1;
        if (k + 1 < count && fastbp_conv_hands_on(layers + k, layers + k + 1, &c, &h, &w)) {
            link_at[k] = size;
            /* a block of the link's maps, whole cache lines */
            size += ((ptrdiff_t)c * h * w * VLMAX + 15) / 16 * 16;
        }
    }
    return size;
}

/* Whether a stack's prepared layers can run block by block: every layer has
 * samples and one unit per block of them (a pooling pass forward on NCHW
 * has one per sample, and a pass whose blocks are split into shares has
 * several), and every layer but the first reads its input side by side (a
 * convolution forward on NCHW copies its last sample when prepared). */
static int API(stackable)(const API(layer_run)* runs, int count)
{
    int k;
    for (k = 0; k < count; k++) {
        const API(layer_run)* r = runs + k;
        if (r->unit == NULL || r->units != r->nblocks || r->nblocks != runs[0].nblocks)
            return 0;
        if (k > 0 && r->kind == FASTBP_CONV_FORWARD && !(r->conv_fwd.layout & FASTBP_BLOCKED_IN))
            return 0;
    }
    return 1;
}

int API(fastbp_conv_stack)(const fastbp_conv_layer* layers, int count, int n, int n_threads,
                          int local_links)
{
    const int nblocks = (n + VLMAX - 1) / VLMAX;
    const int nt = fb_conv_team_size(n_threads, nblocks, 1);
    API(layer_run)* runs;
    API(stack_job) stack;
    void* link_mem = NULL;
    int k, wb, status = 0, sums = 0;
    if (count <= 1 || n_threads > nblocks) {
        for (k = 0; k < count && status == 0; k++) status = API(layer_call)(layers + k, n, n_threads);
        return status;
    }
    runs = (API(layer_run)*)malloc(sizeof(API(layer_run)) * (size_t)count);
    stack.link_at = (ptrdiff_t*)malloc(sizeof(ptrdiff_t) * (size_t)count);
    if (runs == NULL || stack.link_at == NULL) {
        free(runs); free(stack.link_at);
        return -1;
    }
    stack.links = NULL;
    stack.slot_size = local_links ? API(plan_links)(layers, count, stack.link_at) : 0;
    if (stack.slot_size > 0) {
        link_mem = malloc(sizeof(FT) * stack.slot_size * nt + FB_CACHE_LINE);
        stack.links = (FT*)fb_line_start(link_mem);
        if (link_mem == NULL) {
            free(runs); free(stack.link_at);
            return -1;
        }
    }
    for (k = 0; k < count; k++) {
        if (status == 0)
            status = API(layer_prepare)(runs + k, layers + k, n, n_threads);
        else
            API(layer_init)(runs + k, layers[k].kind, 0); /* nothing to release */
        sums |= runs[k].total != NULL;
    }
    if (status == 0 && !API(stackable)(runs, count)) {
        for (k = 0; k < count; k++) API(layer_release)(runs + k);
        free(runs); free(stack.link_at); free(link_mem);
        for (k = 0; k < count && status == 0; k++) status = API(layer_call)(layers + k, n, n_threads);
        return status;
    }
    if (status == 0) {
        stack.runs = runs;
        stack.count = count;
        /* all blocks at once, or WAVE at a time where a layer sums gradients */
        for (wb = 0; wb < nblocks; wb += sums ? FASTBP_WAVE : nblocks) {
            const int nbw = sums && nblocks - wb > FASTBP_WAVE ? FASTBP_WAVE : nblocks - wb;
            for (k = 0; k < count; k++) runs[k].job.wb = wb;
            fb_team_run(nt, nbw, API(stack_unit), &stack);
            for (k = 0; k < count; k++)
                if (runs[k].total != NULL)
                    API(add_parts)(&runs[k].job, nbw, runs[k].total);
        }
        for (k = 0; k < count; k++) API(layer_finish)(runs + k);
    }
    for (k = 0; k < count; k++) API(layer_release)(runs + k);
    free(runs); free(stack.link_at); free(link_mem);
    return status;
}

/* The layers' entry points: a stack of one. */
int API(fastbp_conv5x5_forward)(const FT* X, const FT* W, const FT* b,
                                const unsigned char* table, FT* Y, int n, int c_in,
                                int h, int w, int c_out, int act, int layout, int n_threads)
{
    const fastbp_conv_layer l = {FASTBP_CONV_FORWARD, X, W, b, NULL, table, Y, NULL, NULL,
                                 NULL, c_in, h, w, c_out, act, layout};
    return API(layer_call)(&l, n, n_threads);
}

int API(fastbp_conv5x5_backward)(const FT* X, const FT* W, const FT* dZ,
                                 const unsigned char* table, FT* grad_W, FT* grad_b,
                                 FT* dX, int n, int c_in, int h, int w, int c_out,
                                 int in_act, int layout, int n_threads)
{
    const fastbp_conv_layer l = {FASTBP_CONV_BACKWARD, X, W, NULL, dZ, table, NULL, grad_W,
                                 grad_b, dX, c_in, h, w, c_out, in_act, layout};
    return API(layer_call)(&l, n, n_threads);
}

int API(fastbp_pool2x2_forward)(const FT* Y, const FT* coef, const FT* bias, FT* X,
                                int n, int c, int h, int w, int act, int layout,
                                int n_threads)
{
    const fastbp_conv_layer l = {FASTBP_POOL_FORWARD, Y, coef, bias, NULL, NULL, X, NULL, NULL,
                                 NULL, c, h, w, c, act, layout};
    return API(layer_call)(&l, n, n_threads);
}

int API(fastbp_pool2x2_backward)(const FT* Y, const FT* coef, const FT* dZ,
                                 FT* grad_coef, FT* grad_bias, FT* dY, int n, int c,
                                 int h, int w, int in_act, int layout, int n_threads)
{
    const fastbp_conv_layer l = {FASTBP_POOL_BACKWARD, Y, coef, NULL, dZ, NULL, NULL,
                                 grad_coef, grad_bias, dY, c, h, w, c, in_act, layout};
    return API(layer_call)(&l, n, n_threads);
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
