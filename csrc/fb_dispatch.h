/* One run-time choice of instruction set for all of fastbp's C kernels.
 *
 * Levels: FB_LEVEL_PORTABLE (plain C that the compiler vectorizes for the
 * build's baseline: SSE2 on x86-64, NEON on aarch64), FB_LEVEL_AVX2 (AVX2 and
 * FMA) and FB_LEVEL_AVX512 (AVX-512 F, BW, DQ and VL). The faster copies are
 * compiled with function-level target attributes, so the build needs no
 * -march and a wheel runs on any CPU of its architecture.
 *
 * The level lives in one place per process: fastbp._kernels._dispatch owns
 * it (probed once, at import) and every kernel module binds to it when it is
 * imported (fastbp_dispatch_bind), so the one test hook that forces a level
 * reaches the convolution, dense and RNN kernels alike. A kernel reads the
 * level once per call (fb_level), so a call never mixes paths.
 */
#ifndef FASTBP_FB_DISPATCH_H
#define FASTBP_FB_DISPATCH_H

/* Macros, not an enum, so that #if can compare them. */
#define FB_LEVEL_PORTABLE 0
#define FB_LEVEL_AVX2 1
#define FB_LEVEL_AVX512 2

/* Copies for other instruction sets: GCC/Clang on x86-64, except Windows,
 * where GCC does not align the stack for spilled 32-byte vectors. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32) && \
    !defined(FASTBP_NO_DISPATCH)
#define FB_X86_COPIES 1
#define FB_LEVEL_MAX FB_LEVEL_AVX512
#define FB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FB_TARGET_AVX512 \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define FB_X86_COPIES 0
#define FB_LEVEL_MAX FB_LEVEL_PORTABLE
#endif

/* A helper inlined even where the compiler would not (a kernel's inner
 * tiles, instantiated with constant sizes). */
#if defined(_MSC_VER)
#define FB_INLINE static __forceinline
#elif defined(__GNUC__)
#define FB_INLINE static inline __attribute__((always_inline))
#else
#define FB_INLINE static inline
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FB_HIDDEN __attribute__((visibility("hidden")))
#else
#define FB_HIDDEN
#endif

/* The level in use: it points into fastbp._kernels._dispatch once bound. */
extern FB_HIDDEN const int* fastbp_dispatch_level;

static inline int fb_level(void) { return *fastbp_dispatch_level; }

/* The best level this CPU and its operating system support, capped by the
 * copies compiled in (FB_LEVEL_MAX). */
FB_HIDDEN int fastbp_dispatch_best(void);
/* The level this module's kernels use (fastbp._kernels._dispatch owns it). */
FB_HIDDEN int* fastbp_dispatch_own(void);
/* Make this module's kernels read the level at `level`. */
FB_HIDDEN void fastbp_dispatch_bind(const int* level);

#endif
