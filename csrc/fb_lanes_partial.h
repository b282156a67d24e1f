/* Partial vectors for a kernel template (conv_kernels.h, gemm_kernels.h),
 * included after fb_lanes.h: NAME(load_n)(p, n) loads the first n lanes
 * (0 < n <= VL) and zeros the others, NAME(store_n)(p, v, n) stores the
 * first n and leaves the memory past them alone, masked where the
 * instruction set has masks, so a row of any width is covered without
 * reading or writing past it. No include guard: once per copy.
 */
#if FB_LANES_ISA == FB_LEVEL_AVX512
#if FB_LANES_F32
#define FASTBP_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#else
#define FASTBP_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#endif
FB_INLINE ATTR VT NAME(load_n)(const FT* p, int n) { return FASTBP_LANE(maskz_loadu)(FASTBP_MASK(n), p); }
FB_INLINE ATTR void NAME(store_n)(FT* p, VT v, int n) { FASTBP_LANE(mask_storeu)(p, FASTBP_MASK(n), v); }
#undef FASTBP_MASK

#elif FB_LANES_ISA == FB_LEVEL_AVX2
/* maskload/maskstore take a vector of lane masks: the first n of VL. */
#if FB_LANES_F32
static const int NAME(lane_masks)[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#else
static const long long NAME(lane_masks)[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#endif
#define FASTBP_MASK(n) _mm256_loadu_si256((const __m256i*)(NAME(lane_masks) + VL - (n)))
FB_INLINE ATTR VT NAME(load_n)(const FT* p, int n) { return FASTBP_LANE(maskload)(p, FASTBP_MASK(n)); }
FB_INLINE ATTR void NAME(store_n)(FT* p, VT v, int n) { FASTBP_LANE(maskstore)(p, FASTBP_MASK(n), v); }
#undef FASTBP_MASK

#else /* portable: a partial vector through a small array */
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
#endif
