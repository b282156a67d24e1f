/* Element-wise passes of the RNN time loop (fastbp._kernels._rnn).
 *
 * Each pass reads and writes n contiguous elements. `out` may be the same
 * array as `a` (in-place); `b` may be NULL, which means "add nothing".
 *
 *   fastbp_rnn_act_*:   out[i] = f(a[i] + b[i])            (b NULL: f(a[i]))
 *   fastbp_rnn_dact_*:  out[i] = (a[i] + b[i]) * f'(z_i)   (b NULL: a[i] f'(z_i))
 *                       with f'(z_i) computed from h[i] = f(z_i).
 *
 * Activation codes are those of _math.pxd: 0 identity, 1 logistic, 2 tanh,
 * 3 relu, 4 LeCun's scaled tanh. tanh, logistic and LeCun's tanh use our own
 * exp/expm1 (a few ulp, no libm call) so the loops vectorize; where the CPU
 * has AVX2 and FMA, a second copy of the loops compiled for them is chosen at
 * run time.
 */
#ifndef FASTBP_RNN_H
#define FASTBP_RNN_H

#include <stddef.h>

void fastbp_rnn_act_f(float *out, const float *a, const float *b, ptrdiff_t n, int act);
void fastbp_rnn_act_d(double *out, const double *a, const double *b, ptrdiff_t n, int act);
void fastbp_rnn_dact_f(float *out, const float *a, const float *b, const float *h,
                       ptrdiff_t n, int act);
void fastbp_rnn_dact_d(double *out, const double *a, const double *b, const double *h,
                       ptrdiff_t n, int act);
/* 1 when the AVX2+FMA copy of the loops is in use, 0 otherwise. */
int fastbp_rnn_simd_level(void);
/* Test hook: use at most this level (0: the portable loops); returns the level
 * now in use. Not thread-safe: call it while no kernel runs. */
int fastbp_rnn_set_simd_level(int level);

#endif
