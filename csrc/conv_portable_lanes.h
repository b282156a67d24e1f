/* Lane operations of conv.c's portable kernels, for the FT of the pass that
 * includes this file (no include guard: once per pass, conv.c #undefs them).
 *
 * Before including: FT (float or double) and, for GCC's vector extensions,
 * FASTBP_LANE_SUFFIX (_v4f or _v2d) and FASTBP_LANE_COUNT (4 or 2): the
 * fastbp_*<suffix> helpers conv.c defines for that vector type. Without
 * vector extensions (MSVC, or FASTBP_CONV_SCALAR) each "vector" is one FT.
 */
#if FASTBP_VEC_EXT
#define FASTBP_LANE_PASTE(name, suffix) name##suffix
#define FASTBP_LANE_EXPAND(name, suffix) FASTBP_LANE_PASTE(name, suffix)
#define FASTBP_LANE(name) FASTBP_LANE_EXPAND(name, FASTBP_LANE_SUFFIX)
#define VT FASTBP_LANE(fastbp)
#define VL FASTBP_LANE_COUNT
#define VLOAD(p) FASTBP_LANE(fastbp_ld)(p)
#define VSTORE(p, v) FASTBP_LANE(fastbp_st)((p), (v))
#define VSET1(s) FASTBP_LANE(fastbp_set1)(s)
#else
#define VT FT
#define VL 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(s) (s)
#endif
#define VLOADR(p) VLOAD(p)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
