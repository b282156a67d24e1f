/* The CPU probe and the binding of fb_dispatch.h; compiled into every
 * kernel module. */
#include "fb_dispatch.h"

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#endif

/* Until it is bound, a module reads its own level (portable). */
static int fastbp_dispatch_level_own = FB_LEVEL_PORTABLE;
FB_HIDDEN const int* fastbp_dispatch_level = &fastbp_dispatch_level_own;

static int fastbp_cpu_level(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* __builtin_cpu_supports reports a feature only when the OS saves its
     * registers too (XGETBV: YMM state for AVX2, opmask and ZMM for AVX-512). */
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return FB_LEVEL_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return FB_LEVEL_AVX512;
    return FB_LEVEL_AVX2;
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    int r[4];
    unsigned long long xcr0;
    const int avx512 = (1 << 16) | (1 << 17) | (1 << 30) | (int)(1u << 31); /* F DQ BW VL */
    __cpuid(r, 0);
    if (r[0] < 7)
        return FB_LEVEL_PORTABLE;
    __cpuid(r, 1);
    /* FMA (bit 12), OSXSAVE (27) and AVX (28) of ECX */
    if ((r[2] & ((1 << 12) | (1 << 27) | (1 << 28))) != ((1 << 12) | (1 << 27) | (1 << 28)))
        return FB_LEVEL_PORTABLE;
    xcr0 = _xgetbv(0);
    if ((xcr0 & 0x6) != 0x6) /* the OS saves XMM and YMM */
        return FB_LEVEL_PORTABLE;
    __cpuidex(r, 7, 0);
    if (!(r[1] & (1 << 5))) /* AVX2 */
        return FB_LEVEL_PORTABLE;
    if ((r[1] & avx512) == avx512 && (xcr0 & 0xE0) == 0xE0) /* opmask, ZMM */
        return FB_LEVEL_AVX512;
    return FB_LEVEL_AVX2;
#else
    return FB_LEVEL_PORTABLE;
#endif
}

FB_HIDDEN int fastbp_dispatch_best(void)
{
    const int cpu = fastbp_cpu_level();
    return cpu < FB_LEVEL_MAX ? cpu : FB_LEVEL_MAX;
}

FB_HIDDEN int* fastbp_dispatch_own(void) { return &fastbp_dispatch_level_own; }

FB_HIDDEN void fastbp_dispatch_bind(const int* level) { fastbp_dispatch_level = level; }
