/* The activation table of fastbp's C kernels: one enum, LeCun's constants,
 * and each activation and its derivative written once, used by the dense
 * layers, the RNN time loop and the convolution and pooling layers alike
 * (all through the loops of elementwise.c).
 *
 * Each function is a scalar inline function with no branch the compiler
 * cannot turn into a select and no libm call, so a loop over it vectorizes:
 * elementwise.c compiles its loops once per instruction set (fb_dispatch.h),
 * and the compiler widens these functions to that copy's vector width
 * (SSE2 or NEON, AVX2, AVX-512). fastbp._kernels._math cimports the enum, and
 * _dense.ACTIVATION_CODES maps the names to it for Python.
 *
 * tanh(x) = -u / (u + 2) with u = expm1(-2|x|) (sign restored) has no
 * cancellation; exp, and float64's expm1, come from fb_math.h (float32's
 * tanh has its own, below). Accuracy: a few ulp in float64 and float32
 * (checked against NumPy in the tests).
 */
#ifndef FASTBP_FB_ACTIVATIONS_H
#define FASTBP_FB_ACTIVATIONS_H

#include "fb_math.h"

/* Activation codes (the `act` argument of every kernel). */
enum {
    FB_ACT_IDENTITY = 0,
    FB_ACT_LOGISTIC = 1,
    FB_ACT_TANH = 2,
    FB_ACT_RELU = 3,
    FB_ACT_LECUN_TANH = 4 /* FB_LECUN_A tanh(FB_LECUN_S z) */
};

/* LeCun (1998), Appendix A: f(a) = A tanh(S a). */
#define FB_LECUN_A 1.7159
#define FB_LECUN_S (2.0 / 3.0)

/* tanh: e^-40 < eps/2 (e^-20 in float), so tanh is +-1 beyond; NaN passes. */
FB_INLINE double fb_tanh_d(double x)
{
    double y = -2.0 * fabs(x), s, p, u;
    y = y < -40.0 ? -40.0 : y;
    p = fb_reduce_d(y, &s);
    u = s * p + (s - 1.0);     /* expm1(y) = 2^k (expm1(r) + 1) - 1 */
    return copysign(-u / (u + 2.0), x);
}

/* float tanh with its own expm1(y), y = -2|x|, for speed (it is most of
 * a LeNet-5 layer's non-GEMM time):
 *   - one multiply-add reduces y by k ln2, ln2 rounded to float: |y| <= 20
 *     keeps |k| <= 29, and the error it leaves in e^y shrinks as e^y does,
 *     so tanh (near 1 there) barely sees it. Where the multiply-add is not
 *     fused (the portable SSE2 copy), k ln2 rounds too: exact for |k| <= 12,
 *     and worth under 0.01 ulp beyond;
 *   - expm1(r) = r + r^2 q(r), q a minimax polynomial of degree 5 (the
 *     Taylor one of fb_math.h has 7 terms), within 2.2e-9 of it relative,
 *     evaluated in halves: a shorter chain of dependent multiply-adds.
 * Worst case over every float: 2.498 ulp on the AVX2 path (as with the
 * Taylor polynomial), 2.500 on the portable one; LeCun's tanh 3.60 and 3.65.
 * 15% less time than the Taylor version. */
FB_INLINE float fb_tanh_f(float x)
{
    const float shift = 12582912.0f; /* 0x1.8p23 */
    float a = fabsf(x), t, k, s, r, r2, q0, q1, q2, u;
    uint32_t tb, shb, sb;
    a = a > 10.0f ? 10.0f : a;
    t = a * -2.88539004f + shift; /* -2 log2(e) */
    k = t - shift;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&shb, &shift, sizeof shb);
    sb = (tb - shb + 127u) << 23;
    memcpy(&s, &sb, sizeof s);
    r = k * -0.693147182f + a * -2.0f; /* y - k ln2 */
    r2 = r * r;
    q0 = r * 0.16666666f + 0.5f;
    q1 = r * 0.00833339f + 0.041666362f;
    q2 = r * 0.00019845879f + 0.0013940625f;
    q1 = r2 * q2 + q1;
    u = s * (r + r2 * (r2 * q1 + q0)) + (s - 1.0f); /* expm1(y) */
    return copysignf(-u / (u + 2.0f), x);
}

/* The activations f(z) and their derivatives f'(z) computed from h = f(z),
 * for T = double (SUF d) and float (SUF f); exp never sees a positive
 * argument. LeCun's constants are doubles: a float activation is evaluated
 * partly in double and rounded once, as it always has been. */
#define FB_DEFINE_ACTIVATIONS(T, SUF)                                           \
    FB_INLINE T fb_sigmoid_##SUF(T z)                                           \
    {                                                                           \
        T e = fb_exp_nonpos_##SUF(-(z < 0 ? -z : z)); /* exp(-|z|) */           \
        return (z >= 0 ? (T)1 : e) / ((T)1 + e);                                \
    }                                                                           \
    FB_INLINE T fb_act_##SUF(T z, int act)                                      \
    {                                                                           \
        switch (act) {                                                          \
        case FB_ACT_LOGISTIC: return fb_sigmoid_##SUF(z);                       \
        case FB_ACT_TANH: return fb_tanh_##SUF(z);                              \
        case FB_ACT_RELU: return z > 0 ? z : (T)0;                              \
        case FB_ACT_LECUN_TANH:                                                 \
            return (T)(FB_LECUN_A * fb_tanh_##SUF((T)(FB_LECUN_S * z)));        \
        default: return z;                                                      \
        }                                                                       \
    }                                                                           \
    FB_INLINE T fb_deriv_##SUF(T h, int act)                                    \
    {                                                                           \
        switch (act) {                                                          \
        case FB_ACT_LOGISTIC: return h * ((T)1 - h);                            \
        case FB_ACT_TANH: return (T)1 - h * h;                                  \
        case FB_ACT_RELU: return h > 0 ? (T)1 : (T)0;                           \
        case FB_ACT_LECUN_TANH:                                                 \
            return (T)(FB_LECUN_S * (FB_LECUN_A - h * h / FB_LECUN_A));         \
        default: return (T)1;                                                   \
        }                                                                       \
    }

FB_DEFINE_ACTIVATIONS(double, d)
FB_DEFINE_ACTIVATIONS(float, f)
#undef FB_DEFINE_ACTIVATIONS

#endif
