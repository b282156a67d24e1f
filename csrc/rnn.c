/* Element-wise passes of the RNN time loop; see rnn.h for the contract.
 *
 * Why not libm: glibc's scalar tanh costs about 23 ns an element here, which
 * alone would be several milliseconds per training step at the bench shapes.
 * tanh(x) = -u / (u + 2) with u = expm1(-2|x|) (sign restored) has no
 * cancellation, and expm1/exp below are branch-free (Cody-Waite reduction,
 * Taylor polynomial, 2^k built from bits), so the loops vectorize. Accuracy is
 * a few ulp in float64 and float32 (checked against NumPy in the tests).
 */
/* The clamps and selects below only if-convert (and so vectorize) when GCC may
 * ignore floating-point exception flags, which fastbp never reads. Results do
 * not change. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rnn.h"

#if defined(_MSC_VER)
#define FB_INLINE static __forceinline
#elif defined(__GNUC__)
#define FB_INLINE static inline __attribute__((always_inline))
#else
#define FB_INLINE static inline
#endif

/* Runtime dispatch to an AVX2+FMA copy of the loops (GCC/Clang on x86-64). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FASTBP_NO_DISPATCH)
#define FB_DISPATCH 1
#define FB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FB_DISPATCH 0
#endif

enum { ACT_IDENTITY = 0, ACT_LOGISTIC = 1, ACT_TANH = 2, ACT_RELU = 3, ACT_LECUN_TANH = 4 };

/* LeCun (1998), Appendix A: f(a) = A tanh(S a); same constants as _math.pxd. */
#define LECUN_A 1.7159
#define LECUN_S (2.0 / 3.0)

/* ---------------------------------------------------------------- float64 */

/* y = k ln2 + r, |r| <= ln2 / 2; returns expm1(r) and sets *s = 2^k.
 * Requires -1022 <= k <= 0, i.e. -708 <= y <= 0 (callers clamp). */
FB_INLINE double fb_reduce_d(double y, double *s)
{
    const double shift = 6755399441055744.0; /* 0x1.8p52: adding it rounds to an integer */
    double t = y * 1.44269504088896338700e+00 + shift;
    double k = t - shift;
    uint64_t tb, shb, sb;
    double r, q;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&shb, &shift, sizeof shb);
    sb = (tb - shb + 1023u) << 52; /* the low bits of t hold k */
    memcpy(s, &sb, sizeof sb);
    /* fdlibm's split of ln2: k * LN2_HI is exact for |k| < 2^11. */
    r = (y - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    /* expm1(r) = r + r^2 (1/2! + r/3! + ... + r^11/13!); truncation < 1e-17 r. */
    q = 1.6059043836821613e-10;      /* 1/13! */
    q = q * r + 2.08767569878680990e-09; /* 1/12! */
    q = q * r + 2.50521083854417188e-08; /* 1/11! */
    q = q * r + 2.75573192239858907e-07; /* 1/10! */
    q = q * r + 2.75573192239858907e-06; /* 1/9! */
    q = q * r + 2.48015873015873016e-05; /* 1/8! */
    q = q * r + 1.98412698412698413e-04; /* 1/7! */
    q = q * r + 1.38888888888888889e-03; /* 1/6! */
    q = q * r + 8.33333333333333333e-03; /* 1/5! */
    q = q * r + 4.16666666666666667e-02; /* 1/4! */
    q = q * r + 1.66666666666666667e-01; /* 1/3! */
    q = q * r + 0.5;
    return r + (r * r) * q;
}

FB_INLINE double fb_tanh_d(double x)
{
    double y = -2.0 * fabs(x), s, p, u;
    y = y < -40.0 ? -40.0 : y; /* e^-40 < eps/2: tanh is +-1 beyond; NaN passes through */
    p = fb_reduce_d(y, &s);
    u = s * p + (s - 1.0);     /* expm1(y) = 2^k (expm1(r) + 1) - 1 */
    return copysign(-u / (u + 2.0), x);
}

FB_INLINE double fb_sigmoid_d(double z)
{
    double y = -fabs(z), s, p, e, r;
    y = y < -708.0 ? -708.0 : y;
    p = fb_reduce_d(y, &s);
    e = s * p + s;             /* exp(-|z|) */
    r = (z >= 0.0 ? 1.0 : e) / (1.0 + e);
    return z < -708.0 ? 0.0 : r;
}

FB_INLINE double fb_act_d(double z, int act)
{
    switch (act) {
    case ACT_LOGISTIC: return fb_sigmoid_d(z);
    case ACT_TANH: return fb_tanh_d(z);
    case ACT_RELU: return z > 0.0 ? z : 0.0;
    case ACT_LECUN_TANH: return LECUN_A * fb_tanh_d(LECUN_S * z);
    default: return z;
    }
}

FB_INLINE double fb_deriv_d(double h, int act)
{
    switch (act) {
    case ACT_LOGISTIC: return h * (1.0 - h);
    case ACT_TANH: return 1.0 - h * h;
    case ACT_RELU: return h > 0.0 ? 1.0 : 0.0;
    case ACT_LECUN_TANH: return LECUN_S * (LECUN_A - h * h / LECUN_A);
    default: return 1.0;
    }
}

/* ---------------------------------------------------------------- float32 */

FB_INLINE float fb_reduce_f(float y, float *s)
{
    const float shift = 12582912.0f; /* 0x1.8p23 */
    float t = y * 1.44269502163e+00f + shift;
    float k = t - shift;
    uint32_t tb, shb, sb;
    float r, q;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&shb, &shift, sizeof shb);
    sb = (tb - shb + 127u) << 23;
    memcpy(s, &sb, sizeof sb);
    r = (y - k * 6.9314575195e-01f) - k * 1.4286067653e-06f;
    q = 2.48015873e-05f;          /* 1/8! */
    q = q * r + 1.98412698e-04f;  /* 1/7! */
    q = q * r + 1.38888889e-03f;  /* 1/6! */
    q = q * r + 8.33333333e-03f;  /* 1/5! */
    q = q * r + 4.16666667e-02f;  /* 1/4! */
    q = q * r + 1.66666667e-01f;  /* 1/3! */
    q = q * r + 0.5f;
    return r + (r * r) * q;
}

FB_INLINE float fb_tanh_f(float x)
{
    float y = -2.0f * fabsf(x), s, p, u;
    y = y < -20.0f ? -20.0f : y;
    p = fb_reduce_f(y, &s);
    u = s * p + (s - 1.0f);
    return copysignf(-u / (u + 2.0f), x);
}

FB_INLINE float fb_sigmoid_f(float z)
{
    float y = -fabsf(z), s, p, e, r;
    y = y < -87.0f ? -87.0f : y;
    p = fb_reduce_f(y, &s);
    e = s * p + s;
    r = (z >= 0.0f ? 1.0f : e) / (1.0f + e);
    return z < -87.0f ? 0.0f : r;
}

FB_INLINE float fb_act_f(float z, int act)
{
    switch (act) {
    case ACT_LOGISTIC: return fb_sigmoid_f(z);
    case ACT_TANH: return fb_tanh_f(z);
    case ACT_RELU: return z > 0.0f ? z : 0.0f;
    case ACT_LECUN_TANH: return (float)(LECUN_A * fb_tanh_f((float)(LECUN_S * z)));
    default: return z;
    }
}

FB_INLINE float fb_deriv_f(float h, int act)
{
    switch (act) {
    case ACT_LOGISTIC: return h * (1.0f - h);
    case ACT_TANH: return 1.0f - h * h;
    case ACT_RELU: return h > 0.0f ? 1.0f : 0.0f;
    case ACT_LECUN_TANH: return (float)(LECUN_S * (LECUN_A - h * h / LECUN_A));
    default: return 1.0f;
    }
}

/* ------------------------------------------------------------------ loops */

/* One loop per activation (the switch is outside the loop) so each vectorizes. */
#define FB_CASE_ACT(T, SUF, CODE)                                               \
    case CODE:                                                                  \
        if (out == a && b != NULL)                                              \
            for (i = 0; i < n; i++) out[i] = fb_act_##SUF(out[i] + b[i], CODE); \
        else if (out == a)                                                      \
            for (i = 0; i < n; i++) out[i] = fb_act_##SUF(out[i], CODE);        \
        else if (b != NULL)                                                     \
            for (i = 0; i < n; i++) out[i] = fb_act_##SUF(a[i] + b[i], CODE);   \
        else                                                                    \
            for (i = 0; i < n; i++) out[i] = fb_act_##SUF(a[i], CODE);          \
        break;

/* out == a gets loops that never read a, so the vectorizer needs no alias check. */
#define FB_CASE_DACT(T, SUF, CODE)                                              \
    case CODE:                                                                  \
        if (out == a && b != NULL)                                              \
            for (i = 0; i < n; i++)                                             \
                out[i] = (out[i] + b[i]) * fb_deriv_##SUF(h[i], CODE);          \
        else if (out == a)                                                      \
            for (i = 0; i < n; i++) out[i] = out[i] * fb_deriv_##SUF(h[i], CODE); \
        else if (b != NULL)                                                     \
            for (i = 0; i < n; i++)                                             \
                out[i] = (a[i] + b[i]) * fb_deriv_##SUF(h[i], CODE);            \
        else                                                                    \
            for (i = 0; i < n; i++) out[i] = a[i] * fb_deriv_##SUF(h[i], CODE); \
        break;

#define FB_DEFINE_LOOPS(T, SUF, ATTR, NAME)                                     \
    static ATTR void act_##NAME(T *out, const T *a, const T *b, ptrdiff_t n,    \
                                int act)                                        \
    {                                                                           \
        ptrdiff_t i;                                                            \
        switch (act) {                                                          \
            FB_CASE_ACT(T, SUF, ACT_LOGISTIC)                                   \
            FB_CASE_ACT(T, SUF, ACT_TANH)                                       \
            FB_CASE_ACT(T, SUF, ACT_RELU)                                       \
            FB_CASE_ACT(T, SUF, ACT_LECUN_TANH)                                 \
            FB_CASE_ACT(T, SUF, ACT_IDENTITY)                                   \
        default: break;                                                         \
        }                                                                       \
    }                                                                           \
    static ATTR void dact_##NAME(T *out, const T *a, const T *b, const T *h,    \
                                 ptrdiff_t n, int act)                          \
    {                                                                           \
        ptrdiff_t i;                                                            \
        switch (act) {                                                          \
            FB_CASE_DACT(T, SUF, ACT_LOGISTIC)                                  \
            FB_CASE_DACT(T, SUF, ACT_TANH)                                      \
            FB_CASE_DACT(T, SUF, ACT_RELU)                                      \
            FB_CASE_DACT(T, SUF, ACT_LECUN_TANH)                                \
            FB_CASE_DACT(T, SUF, ACT_IDENTITY)                                  \
        default: break;                                                         \
        }                                                                       \
    }

#define FB_NO_ATTR
FB_DEFINE_LOOPS(double, d, FB_NO_ATTR, d_base)
FB_DEFINE_LOOPS(float, f, FB_NO_ATTR, f_base)

#if FB_DISPATCH
FB_DEFINE_LOOPS(double, d, FB_TARGET_AVX2, d_avx2)
FB_DEFINE_LOOPS(float, f, FB_TARGET_AVX2, f_avx2)

/* -1: not probed yet. Probing twice (a benign race) gives the same answer. */
static int fb_simd_level = -1;

static int fb_probe(void)
{
    if (fb_simd_level < 0) {
        __builtin_cpu_init();
        fb_simd_level = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return fb_simd_level;
}
#else
static int fb_probe(void) { return 0; }
#endif

int fastbp_rnn_simd_level(void) { return fb_probe(); }

int fastbp_rnn_set_simd_level(int level)
{
#if FB_DISPATCH
    int best;
    fb_simd_level = -1;
    best = fb_probe();
    fb_simd_level = level < best ? level : best;
#endif
    (void)level;
    return fb_probe();
}

void fastbp_rnn_act_d(double *out, const double *a, const double *b, ptrdiff_t n, int act)
{
#if FB_DISPATCH
    if (fb_probe()) { act_d_avx2(out, a, b, n, act); return; }
#endif
    act_d_base(out, a, b, n, act);
}

void fastbp_rnn_act_f(float *out, const float *a, const float *b, ptrdiff_t n, int act)
{
#if FB_DISPATCH
    if (fb_probe()) { act_f_avx2(out, a, b, n, act); return; }
#endif
    act_f_base(out, a, b, n, act);
}

void fastbp_rnn_dact_d(double *out, const double *a, const double *b, const double *h,
                       ptrdiff_t n, int act)
{
#if FB_DISPATCH
    if (fb_probe()) { dact_d_avx2(out, a, b, h, n, act); return; }
#endif
    dact_d_base(out, a, b, h, n, act);
}

void fastbp_rnn_dact_f(float *out, const float *a, const float *b, const float *h,
                       ptrdiff_t n, int act)
{
#if FB_DISPATCH
    if (fb_probe()) { dact_f_avx2(out, a, b, h, n, act); return; }
#endif
    dact_f_base(out, a, b, h, n, act);
}
