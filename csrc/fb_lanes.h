/* Names and lane operations of one copy of a kernel template (conv_kernels.h,
 * gemm_kernels.h), which includes this first and fb_lanes_undef.h at its end.
 *
 * Given FB_LANES_F32 (1 float, 0 double) and FB_LANES_ISA (an
 * FB_LEVEL_* of fb_dispatch.h), this defines FT, EW(x) (the element-wise
 * loop x of that dtype), ARGS(x) (the argument blocks), NAME(x) (this copy's
 * name for x), ATTR (its target attribute), and VT, a vector of VL lanes of
 * FT, with VLOAD, VLOADR (a load that feeds several multiply-adds), VSTORE,
 * VSET1, VFMA (a*b + c), VADD and VMUL.
 */
#if FB_LANES_F32
#define FT float
#define EW(x) x##_f
#define ARGS(x) x##_f32
#else
#define FT double
#define EW(x) x##_d
#define ARGS(x) x##_f64
#endif

#if FB_LANES_ISA == FB_LEVEL_PORTABLE
/* GCC/Clang vector extensions: 16 bytes, which the compiler maps to SSE2 on
 * x86-64 and NEON on aarch64. Without them (MSVC, or conv.c's
 * FASTBP_CONV_SCALAR) each "vector" is one FT. This copy needs the includer's
 * FASTBP_VEC_EXT and fastbp_v4f / fastbp_v2d helpers (conv.c has them; the
 * GEMM has no portable copy). */
#define ATTR
#if FB_LANES_F32
#define NAME(x) x##_f32_port
#else
#define NAME(x) x##_f64_port
#endif
#if FASTBP_VEC_EXT && FB_LANES_F32
#define VT fastbp_v4f
#define VL 4
#define VLOAD(p) fastbp_ld_v4f(p)
#define VSTORE(p, v) fastbp_st_v4f((p), (v))
#define VSET1(s) fastbp_set1_v4f(s)
#elif FASTBP_VEC_EXT
#define VT fastbp_v2d
#define VL 2
#define VLOAD(p) fastbp_ld_v2d(p)
#define VSTORE(p, v) fastbp_st_v2d((p), (v))
#define VSET1(s) fastbp_set1_v2d(s)
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
#define VMUL(a, b) ((a) * (b))

#else /* x86-64 intrinsics: FASTBP_LANE(op) is _mm256_op_ps, _mm512_op_pd, ... */
#if FB_LANES_ISA == FB_LEVEL_AVX2
#define ATTR FB_TARGET_AVX2
#define FASTBP_LANE_W(op) _mm256_##op
#if FB_LANES_F32
#define NAME(x) x##_f32_avx2
#define VT __m256
#define VL 8
#else
#define NAME(x) x##_f64_avx2
#define VT __m256d
#define VL 4
#endif
#else
#define ATTR FB_TARGET_AVX512
#define FASTBP_LANE_W(op) _mm512_##op
#if FB_LANES_F32
#define NAME(x) x##_f32_avx512
#define VT __m512
#define VL 16
#else
#define NAME(x) x##_f64_avx512
#define VT __m512d
#define VL 8
#endif
#endif
#if FB_LANES_F32
#define FASTBP_LANE(op) FASTBP_LANE_W(op##_ps)
#else
#define FASTBP_LANE(op) FASTBP_LANE_W(op##_pd)
#endif
#define VLOAD(p) FASTBP_LANE(loadu)(p)
/* One load whose value feeds several FMAs: the empty asm keeps GCC from
 * folding it into each FMA as a separate memory operand. */
#define VLOADR(p) __extension__({ VT fastbp_t_ = VLOAD(p); __asm__("" : "+v"(fastbp_t_)); fastbp_t_; })
#define VSTORE(p, v) FASTBP_LANE(storeu)((p), (v))
#define VSET1(s) FASTBP_LANE(set1)(s)
#define VFMA(a, b, c) FASTBP_LANE(fmadd)((a), (b), (c))
#define VADD(a, b) FASTBP_LANE(add)((a), (b))
#define VMUL(a, b) FASTBP_LANE(mul)((a), (b))
#endif
