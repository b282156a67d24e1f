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

/* The softmax of rows of n >= 1 logits, and its cross-entropy, delta and
 * row losses; the contract is elementwise.h's. Each row's maximum and sums
 * run in FB_CE_LANES interleaved partial results combined in lane order (one
 * chain of dependent additions would cost n times the adder's latency), the
 * same in every copy. No fused multiply-adds: given the exponentials (whose
 * last bits differ between copies), every copy gives the same bits. */
#define FB_CE_LANES 8
#define FB_CE_CHUNK 32
/* FASTBP_CONV_SCALAR (tools/check_memory.sh conv-scalar) builds this code
 * without vector extensions too, as compilers without them (MSVC) do. */
#if defined(__GNUC__) && !defined(FASTBP_CONV_SCALAR)
/* The lanes as GCC vectors of VB bytes, the copy's vector width up to 32
 * (wider ones GCC splits into scalars), so the lane-wise maximum and sums
 * vectorize (GCC leaves a loop over an array of lanes scalar); the maximum's
 * select keeps `>`'s NaN rule. */
#define FB_LANE_TYPES(VB)                                                       \
    typedef float fb_lanes##VB##_f __attribute__((vector_size(VB)));            \
    typedef int32_t fb_mask##VB##_f __attribute__((vector_size(VB)));           \
    typedef double fb_lanes##VB##_d __attribute__((vector_size(VB)));           \
    typedef int64_t fb_mask##VB##_d __attribute__((vector_size(VB)));
FB_LANE_TYPES(16)
FB_LANE_TYPES(32)
#define FB_LANES_REDUCE(SUF, VB, acc, z, n, j, STEP)                            \
    {                                                                           \
        fb_lanes##VB##_##SUF v_, a_[FB_CE_LANES * sizeof(*(z)) / VB];           \
        int q_;                                                                 \
        memcpy(a_, acc, sizeof a_);                                             \
        for (; j + FB_CE_LANES <= n; j += FB_CE_LANES)                          \
            for (q_ = 0; q_ < (int)(sizeof a_ / sizeof v_); q_++) {             \
                memcpy(&v_, z + j + q_ * (VB / sizeof(*(z))), sizeof v_);       \
                STEP                                                            \
            }                                                                   \
        memcpy(acc, a_, sizeof a_);                                             \
    }
#define FB_LANES_MAX(SUF, VB, m, z, n, j)                                       \
    FB_LANES_REDUCE(SUF, VB, m, z, n, j, {                                      \
        fb_mask##VB##_##SUF k_ = v_ > a_[q_];                                   \
        a_[q_] = (fb_lanes##VB##_##SUF)((k_ & (fb_mask##VB##_##SUF)v_)          \
                                        | (~k_ & (fb_mask##VB##_##SUF)a_[q_])); \
    })
#define FB_LANES_SUM(SUF, VB, s, y, n, j) FB_LANES_REDUCE(SUF, VB, s, y, n, j, a_[q_] += v_;)
#else
#define FB_LANES_MAX(SUF, VB, m, z, n, j)                                       \
    {                                                                           \
        int l_;                                                                 \
        for (; j + FB_CE_LANES <= n; j += FB_CE_LANES)                          \
            for (l_ = 0; l_ < FB_CE_LANES; l_++)                                \
                m[l_] = z[j + l_] > m[l_] ? z[j + l_] : m[l_];                  \
    }
#define FB_LANES_SUM(SUF, VB, s, y, n, j)                                       \
    {                                                                           \
        int l_;                                                                 \
        for (; j + FB_CE_LANES <= n; j += FB_CE_LANES)                          \
            for (l_ = 0; l_ < FB_CE_LANES; l_++) s[l_] += y[j + l_];            \
    }
#endif
#define FB_DEFINE_SOFTMAX_CE(T, SUF, LOG, VB, ATTR, NAME)                       \
    static ATTR FB_NO_CONTRACT_ATTR T row_max_##NAME(const T *z, ptrdiff_t n)   \
    {                                                                           \
        T m[FB_CE_LANES], r = z[0];                                             \
        ptrdiff_t j = 0;                                                        \
        int l;                                                                  \
        for (l = 0; l < FB_CE_LANES; l++) m[l] = r;                             \
        FB_LANES_MAX(SUF, VB, m, z, n, j)                                       \
        for (l = 0; l < FB_CE_LANES; l++) r = m[l] > r ? m[l] : r;              \
        for (; j < n; j++) r = z[j] > r ? z[j] : r;                             \
        return r;                                                               \
    }                                                                           \
    static ATTR FB_NO_CONTRACT_ATTR T row_sum_##NAME(const T *y, ptrdiff_t n)   \
    {                                                                           \
        T s[FB_CE_LANES] = {0}, r = 0;                                          \
        ptrdiff_t j = 0;                                                        \
        int l;                                                                  \
        FB_LANES_SUM(SUF, VB, s, y, n, j)                                       \
        for (l = 0; l < FB_CE_LANES; l++) r += s[l];                            \
        for (; j < n; j++) r += y[j];                                           \
        return r;                                                               \
    }                                                                           \
    /* rows <= FB_CE_CHUNK: out = exp(z - max of z's row), total its sums */    \
    static ATTR FB_NO_CONTRACT_ATTR void chunk_exp_##NAME(                      \
        const T *z, T *out, ptrdiff_t rows, ptrdiff_t n, T *shift, T *total)    \
    {                                                                           \
        ptrdiff_t i;                                                            \
        for (i = 0; i < rows; i++) shift[i] = row_max_##NAME(z + i * n, n);     \
        softmax_exp_##NAME(z, shift, out, rows, n, total);                      \
    }                                                                           \
    static ATTR FB_NO_CONTRACT_ATTR void softmax_ce_##NAME(                     \
        T *z, const T *y, const int32_t *cls, T *d, ptrdiff_t rows,             \
        ptrdiff_t n, double scale, const T *sw, T lo, T hi, double *row_loss)   \
    {                                                                           \
        FB_NO_CONTRACT                                                          \
        T shift[FB_CE_CHUNK], total[FB_CE_CHUNK], w, ysum, lse, v, loss;        \
        ptrdiff_t c0, c1, i, j, c;                                              \
        for (c0 = 0; c0 < rows; c0 = c1) {                                      \
            c1 = c0 + FB_CE_CHUNK < rows ? c0 + FB_CE_CHUNK : rows;             \
            chunk_exp_##NAME(z + c0 * n, d + c0 * n, c1 - c0, n, shift, total); \
            for (i = c0; i < c1; i++) {                                         \
                T *zi = z + i * n, *di = d + i * n;                             \
                const T t = total[i - c0];                                      \
                w = (T)scale;                                                   \
                if (sw != NULL) w = w * sw[i];                                  \
                lse = shift[i - c0] + LOG(t);                                   \
                /* -log(p) for p clipped to [eps, 1 - eps] is -log(p) clipped   \
                 * to [lo, hi] */                                               \
                if (y == NULL) {                                                \
                    /* class c: the one-hot row's bits (its sum is 1, its       \
                     * other terms +0 or, with lse NaN, NaN as here) */         \
                    c = cls[i];                                                 \
                    v = lse - zi[c];                                            \
                    loss = v < lo ? lo : (v > hi ? hi : v);                     \
                    for (j = 0; j < n; j++) {                                   \
                        zi[j] = di[j] / t;                                      \
                        di[j] = w * zi[j];                                      \
                    }                                                           \
                    di[c] = w * (zi[c] - 1);                                    \
                } else {                                                        \
                    const T *yi = y + i * n;                                    \
                    ysum = row_sum_##NAME(yi, n);                               \
                    /* the loss's terms in z's place */                         \
                    for (j = 0; j < n; j++) {                                   \
                        v = lse - zi[j];                                        \
                        zi[j] = yi[j] * (v < lo ? lo : (v > hi ? hi : v));      \
                    }                                                           \
                    loss = row_sum_##NAME(zi, n);                               \
                    for (j = 0; j < n; j++) {                                   \
                        zi[j] = di[j] / t;                                      \
                        di[j] = w * (ysum * zi[j] - yi[j]);                     \
                    }                                                           \
                }                                                               \
                row_loss[i] = sw != NULL ? (double)(loss * sw[i]) : (double)loss; \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    /* predict's softmax, in place */                                           \
    static ATTR FB_NO_CONTRACT_ATTR void softmax_##NAME(T *z, ptrdiff_t rows,   \
                                                        ptrdiff_t n)            \
    {                                                                           \
        T shift[FB_CE_CHUNK], total[FB_CE_CHUNK];                               \
        ptrdiff_t c0, c1, i, j;                                                 \
        for (c0 = 0; c0 < rows; c0 = c1) {                                      \
            c1 = c0 + FB_CE_CHUNK < rows ? c0 + FB_CE_CHUNK : rows;             \
            chunk_exp_##NAME(z + c0 * n, z + c0 * n, c1 - c0, n, shift, total); \
            for (i = c0; i < c1; i++)                                           \
                for (j = 0; j < n; j++) z[i * n + j] = z[i * n + j] / total[i - c0]; \
        }                                                                       \
    }

/* out[c] = the sum of column c over m rows (stride ld), rows added in order
 * from 0: four rows at a time added to out in turn (out stays in L1; the
 * additions are the same, in the same order, as one row at a time),
 * vectorized along the rows. */
#define FB_DEFINE_COLUMN_SUMS(T, ATTR, NAME)                                    \
    static ATTR void column_sums_##NAME(const T *restrict a, ptrdiff_t m,       \
                                        ptrdiff_t ld, ptrdiff_t n,              \
                                        T *restrict out)                        \
    {                                                                           \
        ptrdiff_t i = 0, j;                                                     \
        for (j = 0; j < n; j++) out[j] = 0;                                     \
        for (; i + 4 <= m; i += 4) {                                            \
            const T *r0 = a + i * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld; \
            for (j = 0; j < n; j++) out[j] = (((out[j] + r0[j]) + r1[j]) + r2[j]) + r3[j]; \
        }                                                                       \
        for (; i < m; i++)                                                      \
            for (j = 0; j < n; j++) out[j] += a[i * ld + j];                    \
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
#define FB_DEFINE_ALL(T, SUF, SQRT, LOG, VB, SB, ATTR, NAME)                    \
    FB_DEFINE_LOOPS(T, SUF, ATTR, NAME)                                         \
    FB_DEFINE_L2(T, ATTR, NAME)                                                 \
    FB_DEFINE_ADAM(T, SQRT, ATTR, NAME)                                         \
    FB_DEFINE_SGD(T, ATTR, NAME)                                                \
    FB_DEFINE_FINITE(T, SUF, ATTR, NAME)                                        \
    FB_DEFINE_SOFTMAX_CE(T, SUF, LOG, VB, ATTR, NAME)                           \
    FB_DEFINE_COLUMN_SUMS(T, ATTR, NAME)

#define FB_NO_ATTR
FB_DEFINE_ALL(double, d, sqrt, log, 16, 128, FB_NO_ATTR, d_base)
FB_DEFINE_ALL(float, f, sqrtf, logf, 16, 128, FB_NO_ATTR, f_base)
#if FB_X86_COPIES
FB_DEFINE_ALL(double, d, sqrt, log, 32, 256, FB_TARGET_AVX2, d_avx2)
FB_DEFINE_ALL(float, f, sqrtf, logf, 32, 256, FB_TARGET_AVX2, f_avx2)
FB_DEFINE_ALL(double, d, sqrt, log, 32, 256, FB_TARGET_AVX512, d_avx512)
FB_DEFINE_ALL(float, f, sqrtf, logf, 32, 256, FB_TARGET_AVX512, f_avx512)
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

void fastbp_softmax_ce_f(float *z, const float *y, const int32_t *cls, float *d,
                         ptrdiff_t rows, ptrdiff_t n, double scale, const float *sw,
                         float lo, float hi, double *row_loss)
{
    FB_CALL(softmax_ce_f, z, y, cls, d, rows, n, scale, sw, lo, hi, row_loss);
}

void fastbp_softmax_ce_d(double *z, const double *y, const int32_t *cls, double *d,
                         ptrdiff_t rows, ptrdiff_t n, double scale, const double *sw,
                         double lo, double hi, double *row_loss)
{
    FB_CALL(softmax_ce_d, z, y, cls, d, rows, n, scale, sw, lo, hi, row_loss);
}

void fastbp_column_sums_f(const float *a, ptrdiff_t m, ptrdiff_t ld, ptrdiff_t n, float *out)
{
    FB_CALL(column_sums_f, a, m, ld, n, out);
}

void fastbp_column_sums_d(const double *a, ptrdiff_t m, ptrdiff_t ld, ptrdiff_t n,
                          double *out)
{
    FB_CALL(column_sums_d, a, m, ld, n, out);
}

void fastbp_softmax_f(float *z, ptrdiff_t rows, ptrdiff_t n)
{
    FB_CALL(softmax_f, z, rows, n);
}

void fastbp_softmax_d(double *z, ptrdiff_t rows, ptrdiff_t n)
{
    FB_CALL(softmax_d, z, rows, n);
}
