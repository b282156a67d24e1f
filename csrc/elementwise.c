/* Element-wise passes of the dense layers, the RNN time loop and the
 * convolution and pooling layers; see elementwise.h for the contract. The
 * activations are those of fb_activations.h.
 */
#include "fb_activations.h"
#include "elementwise.h"

#include <stdint.h>
#include <string.h>

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

/* The switch of act and dact: one CASE(T, SUF, code) per activation code. */
#define FB_SWITCH_ACT(CASE, T, SUF)                                             \
    switch (act) {                                                              \
        CASE(T, SUF, FB_ACT_LOGISTIC)                                           \
        CASE(T, SUF, FB_ACT_TANH)                                               \
        CASE(T, SUF, FB_ACT_RELU)                                               \
        CASE(T, SUF, FB_ACT_LECUN_TANH)                                         \
        CASE(T, SUF, FB_ACT_IDENTITY)                                           \
    default: break;                                                             \
    }

/* The exponentials vectorize; each row's sum stays in index order (a
 * vector sum would reorder it). One such chain of dependent additions costs
 * n times the adder's latency, so FB_SOFTMAX_ROWS rows are summed side by
 * side: their chains overlap, and each row's sum is the same as alone. */
#define FB_SOFTMAX_ROWS 8
#define FB_DEFINE_LOOPS(T, SUF, ATTR, NAME)                                     \
    static ATTR void softmax_exp_##NAME(const T *z, const T *shift, T *out,     \
                                        ptrdiff_t rows, ptrdiff_t n, T *total)  \
    {                                                                           \
        ptrdiff_t r, i;                                                         \
        int j;                                                                  \
        for (r = 0; r < rows; r++)                                              \
            for (i = 0; i < n; i++)                                             \
                out[r * n + i] = fb_exp_nonpos_##SUF(z[r * n + i] - shift[r]);  \
        for (r = 0; r + FB_SOFTMAX_ROWS <= rows; r += FB_SOFTMAX_ROWS) {        \
            T acc[FB_SOFTMAX_ROWS] = {0};                                       \
            for (i = 0; i < n; i++)                                             \
                for (j = 0; j < FB_SOFTMAX_ROWS; j++) acc[j] += out[(r + j) * n + i]; \
            for (j = 0; j < FB_SOFTMAX_ROWS; j++) total[r + j] = acc[j];        \
        }                                                                       \
        for (; r < rows; r++) {                                                 \
            T sum = 0;                                                          \
            for (i = 0; i < n; i++) sum += out[r * n + i];                      \
            total[r] = sum;                                                     \
        }                                                                       \
    }                                                                           \
    static ATTR void act_##NAME(T *out, const T *a, const T *b, ptrdiff_t n,    \
                                int act)                                        \
    {                                                                           \
        ptrdiff_t i;                                                            \
        FB_SWITCH_ACT(FB_CASE_ACT, T, SUF)                                      \
    }                                                                           \
    static ATTR void dact_##NAME(T *out, const T *a, const T *b, const T *h,    \
                                 ptrdiff_t n, int act)                          \
    {                                                                           \
        ptrdiff_t i;                                                            \
        FB_SWITCH_ACT(FB_CASE_DACT, T, SUF)                                     \
    }

/* L2 block: grad += c theta, and sum(theta^2) in double. One running sum
 * would chain every addition on the one before (4 cycles an element); 8
 * sums over interleaved elements are independent lanes, which vectorize
 * without reordering any sum, then add in a fixed tree. */
#define FB_L2_LANES 8
#define FB_DEFINE_L2(T, ATTR, NAME)                                             \
    static ATTR double l2_##NAME(const T *theta, T *grad, T c, ptrdiff_t n)    \
    {                                                                           \
        double acc[FB_L2_LANES] = {0}, x;                                       \
        ptrdiff_t i, j;                                                         \
        for (i = 0; i + FB_L2_LANES <= n; i += FB_L2_LANES)                     \
            for (j = 0; j < FB_L2_LANES; j++) {                                 \
                x = (double)theta[i + j];                                       \
                acc[j] += x * x;                                                \
                grad[i + j] += c * theta[i + j];                                \
            }                                                                   \
        for (j = 0; i + j < n; j++) {                                           \
            x = (double)theta[i + j];                                           \
            acc[j] += x * x;                                                    \
            grad[i + j] += c * theta[i + j];                                    \
        }                                                                       \
        return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
    }

/* Adam's update, rounded as sklearn's numpy code rounds it: the caller
 * passes 1 - b1 and 1 - b2 as sklearn forms them (in double, then rounded to
 * T), and no multiply-adds are fused here, so each element is also the same
 * in the vector body and the scalar remainder (callers cut the loop where the
 * thread count says). sqrt and division are exact in IEEE arithmetic, so the
 * AVX2 and AVX-512 copies give the same bits as the portable one, 8 or 16
 * floats at a time. */
#if defined(__clang__)
#define FB_NO_CONTRACT_ATTR
#define FB_NO_CONTRACT _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define FB_NO_CONTRACT_ATTR __attribute__((optimize("fp-contract=off")))
#define FB_NO_CONTRACT
#else
#define FB_NO_CONTRACT_ATTR
#define FB_NO_CONTRACT
#endif
#define FB_DEFINE_ADAM(T, SQRT, ATTR, NAME)                                     \
    static ATTR FB_NO_CONTRACT_ATTR void adam_##NAME(T *theta, const T *g, T *m1, \
                                                     T *m2, T lr, T b1, T c1,   \
                                                     T b2, T c2, T eps,         \
                                                     ptrdiff_t n)               \
    {                                                                           \
        FB_NO_CONTRACT                                                          \
        const T neg_lr = -lr;                                                   \
        ptrdiff_t i;                                                            \
        for (i = 0; i < n; i++) {                                               \
            m1[i] = b1 * m1[i] + c1 * g[i];                                     \
            m2[i] = b2 * m2[i] + c2 * (g[i] * g[i]);                            \
            theta[i] += neg_lr * m1[i] / (SQRT(m2[i]) + eps);                   \
        }                                                                       \
    }

/* Momentum SGD as sklearn's numpy code rounds it: v = mu v - lr g, then
 * theta += v (or, with Nesterov, theta += mu v - lr g); no fused
 * multiply-adds, so every copy gives the same bits. */
#define FB_DEFINE_SGD(T, ATTR, NAME)                                            \
    static ATTR FB_NO_CONTRACT_ATTR void sgd_##NAME(T *theta, const T *g, T *v, T lr, \
                                                    T mu, int nesterov,         \
                                                    ptrdiff_t n)                \
    {                                                                           \
        FB_NO_CONTRACT                                                          \
        ptrdiff_t i;                                                            \
        if (nesterov) {                                                         \
            for (i = 0; i < n; i++) {                                           \
                v[i] = mu * v[i] - lr * g[i];                                   \
                theta[i] += mu * v[i] - lr * g[i];                              \
            }                                                                   \
        } else {                                                                \
            for (i = 0; i < n; i++) {                                           \
                v[i] = mu * v[i] - lr * g[i];                                   \
                theta[i] += v[i];                                               \
            }                                                                   \
        }                                                                       \
    }

/* 1 if every x[i] is finite: its exponent bits are not all ones (NaN and the
 * infinities). Tested on the bits, not as x - x == 0, so that no
 * floating-point option of a build (-ffinite-math-only) can fold it away;
 * the flags are or-ed without a branch, so the loop vectorizes. */
#define FB_BITS_f uint32_t
#define FB_EXPONENT_f 0x7f800000u
#define FB_BITS_d uint64_t
#define FB_EXPONENT_d 0x7ff0000000000000ull
#define FB_DEFINE_FINITE(T, SUF, ATTR, NAME)                                    \
    static ATTR int finite_##NAME(const T *x, ptrdiff_t n)                      \
    {                                                                           \
        FB_BITS_##SUF bits, bad = 0;                                            \
        ptrdiff_t i;                                                            \
        for (i = 0; i < n; i++) {                                               \
            memcpy(&bits, x + i, sizeof bits);                                  \
            bad |= (FB_BITS_##SUF)((bits & FB_EXPONENT_##SUF) == FB_EXPONENT_##SUF); \
        }                                                                       \
        return !bad;                                                            \
    }

/* Every loop of this file, for one dtype and one instruction set. */
#define FB_DEFINE_ALL(T, SUF, SQRT, ATTR, NAME)                                 \
    FB_DEFINE_LOOPS(T, SUF, ATTR, NAME)                                         \
    FB_DEFINE_L2(T, ATTR, NAME)                                                 \
    FB_DEFINE_ADAM(T, SQRT, ATTR, NAME)                                         \
    FB_DEFINE_SGD(T, ATTR, NAME)                                                \
    FB_DEFINE_FINITE(T, SUF, ATTR, NAME)

#define FB_NO_ATTR
FB_DEFINE_ALL(double, d, sqrt, FB_NO_ATTR, d_base)
FB_DEFINE_ALL(float, f, sqrtf, FB_NO_ATTR, f_base)
#if FB_X86_COPIES
FB_DEFINE_ALL(double, d, sqrt, FB_TARGET_AVX2, d_avx2)
FB_DEFINE_ALL(float, f, sqrtf, FB_TARGET_AVX2, f_avx2)
FB_DEFINE_ALL(double, d, sqrt, FB_TARGET_AVX512, d_avx512)
FB_DEFINE_ALL(float, f, sqrtf, FB_TARGET_AVX512, f_avx512)
/* The copy of loop `name` for the level in use (read once per call). */
#define FB_CALL(name, ...)                                                      \
    (fb_level() >= FB_LEVEL_AVX512 ? name##_avx512(__VA_ARGS__)                 \
     : fb_level() >= FB_LEVEL_AVX2 ? name##_avx2(__VA_ARGS__)                   \
                                   : name##_base(__VA_ARGS__))
#else
#define FB_CALL(name, ...) name##_base(__VA_ARGS__)
#endif

void fastbp_act_d(double *out, const double *a, const double *b, ptrdiff_t n, int act)
{
    FB_CALL(act_d, out, a, b, n, act);
}

void fastbp_act_f(float *out, const float *a, const float *b, ptrdiff_t n, int act)
{
    FB_CALL(act_f, out, a, b, n, act);
}

void fastbp_dact_d(double *out, const double *a, const double *b, const double *h,
                   ptrdiff_t n, int act)
{
    FB_CALL(dact_d, out, a, b, h, n, act);
}

void fastbp_dact_f(float *out, const float *a, const float *b, const float *h,
                   ptrdiff_t n, int act)
{
    FB_CALL(dact_f, out, a, b, h, n, act);
}

void fastbp_softmax_exp_f(const float *z, const float *shift, float *out, ptrdiff_t rows,
                          ptrdiff_t n, float *total)
{
    FB_CALL(softmax_exp_f, z, shift, out, rows, n, total);
}

void fastbp_softmax_exp_d(const double *z, const double *shift, double *out, ptrdiff_t rows,
                          ptrdiff_t n, double *total)
{
    FB_CALL(softmax_exp_d, z, shift, out, rows, n, total);
}

double fastbp_l2_f(const float *theta, float *grad, float c, ptrdiff_t n)
{
    return FB_CALL(l2_f, theta, grad, c, n);
}

double fastbp_l2_d(const double *theta, double *grad, double c, ptrdiff_t n)
{
    return FB_CALL(l2_d, theta, grad, c, n);
}

void fastbp_adam_f(float *theta, const float *g, float *m1, float *m2, float lr, float b1,
                   float c1, float b2, float c2, float eps, ptrdiff_t n)
{
    FB_CALL(adam_f, theta, g, m1, m2, lr, b1, c1, b2, c2, eps, n);
}

void fastbp_adam_d(double *theta, const double *g, double *m1, double *m2, double lr,
                   double b1, double c1, double b2, double c2, double eps, ptrdiff_t n)
{
    FB_CALL(adam_d, theta, g, m1, m2, lr, b1, c1, b2, c2, eps, n);
}

void fastbp_sgd_f(float *theta, const float *g, float *v, float lr, float mu, int nesterov,
                  ptrdiff_t n)
{
    FB_CALL(sgd_f, theta, g, v, lr, mu, nesterov, n);
}

void fastbp_sgd_d(double *theta, const double *g, double *v, double lr, double mu,
                  int nesterov, ptrdiff_t n)
{
    FB_CALL(sgd_d, theta, g, v, lr, mu, nesterov, n);
}

int fastbp_all_finite_f(const float *x, ptrdiff_t n)
{
    return FB_CALL(finite_f, x, n);
}

int fastbp_all_finite_d(const double *x, ptrdiff_t n)
{
    return FB_CALL(finite_d, x, n);
}
