/* Element-wise passes of the dense layers, the RNN time loop and the
 * convolution and pooling layers, compiled into fastbp._kernels._dense,
 * _rnn and _conv.
 *
 * Each pass reads and writes n contiguous elements. `out` may be the same
 * array as `a` (in-place); `b` may be NULL, which means "add nothing".
 *
 *   fastbp_act_*:   out[i] = f(a[i] + b[i])            (b NULL: f(a[i]))
 *   fastbp_dact_*:  out[i] = (a[i] + b[i]) * f'(z_i)   (b NULL: a[i] f'(z_i))
 *                       with f'(z_i) computed from h[i] = f(z_i).
 *   fastbp_softmax_ce_*: rows of n >= 1 logits z, targets y (y NULL: the
 *                       one-hot rows of classes cls[r] in [0, n), with the
 *                       same bits): with w_r = scale (sw NULL) or scale *
 *                       sw[r], z turns into the softmax p, d = w_r (sum(y_r) p
 *                       - y_r) and row_loss[r] = the cross-entropy sum_j y_rj
 *                       (-log p_rj), -log p clipped to [lo, hi], times sw[r]
 *                       unless sw is NULL; no fused multiply-adds.
 *   fastbp_softmax_*: rows of n >= 1 logits z into their softmax, in place.
 *   fastbp_column_sums_*: out[c] = sum over i < m of a[i * ld + c], c < n,
 *                       rows added in order.
 *   fastbp_l2_*:    grad[i] += c * theta[i]; returns sum(theta^2) in double,
 *                       added in a fixed order (8 interleaved partial sums).
 *   fastbp_adam_*:  Adam's step, m1 = b1 m1 + c1 g, m2 = b2 m2 + c2 g^2,
 *                       theta += (-lr) m1 / (sqrt(m2) + eps), with c1 = 1 - b1
 *                       and c2 = 1 - b2 as the caller rounds them; no fused
 *                       multiply-adds (rounded as numpy rounds it).
 *   fastbp_sgd_*:   momentum SGD, v = mu v - lr g, theta += v (Nesterov:
 *                       theta += mu v - lr g); no fused multiply-adds.
 *   fastbp_all_finite_*: 1 if no x[i] is NaN or infinite, else 0.
 *
 * Activation codes and functions are those of fb_activations.h. They and the
 * softmax exponentials use fb_math.h (a few ulp, no libm call) so the loops
 * vectorize (the cross-entropy takes libm's log once a row); each loop has a
 * copy per instruction set, chosen at run time (fb_dispatch.h).
 */
#ifndef FASTBP_ELEMENTWISE_H
#define FASTBP_ELEMENTWISE_H

#include <stddef.h>
#include <stdint.h>

void fastbp_act_f(float *out, const float *a, const float *b, ptrdiff_t n, int act);
void fastbp_act_d(double *out, const double *a, const double *b, ptrdiff_t n, int act);
void fastbp_dact_f(float *out, const float *a, const float *b, const float *h,
                   ptrdiff_t n, int act);
void fastbp_dact_d(double *out, const double *a, const double *b, const double *h,
                   ptrdiff_t n, int act);
void fastbp_softmax_ce_f(float *z, const float *y, const int32_t *cls, float *d,
                         ptrdiff_t rows, ptrdiff_t n, double scale, const float *sw,
                         float lo, float hi, double *row_loss);
void fastbp_softmax_ce_d(double *z, const double *y, const int32_t *cls, double *d,
                         ptrdiff_t rows, ptrdiff_t n, double scale, const double *sw,
                         double lo, double hi, double *row_loss);
void fastbp_softmax_f(float *z, ptrdiff_t rows, ptrdiff_t n);
void fastbp_softmax_d(double *z, ptrdiff_t rows, ptrdiff_t n);
void fastbp_column_sums_f(const float *a, ptrdiff_t m, ptrdiff_t ld, ptrdiff_t n, float *out);
void fastbp_column_sums_d(const double *a, ptrdiff_t m, ptrdiff_t ld, ptrdiff_t n,
                          double *out);
double fastbp_l2_f(const float *theta, float *grad, float c, ptrdiff_t n);
double fastbp_l2_d(const double *theta, double *grad, double c, ptrdiff_t n);
void fastbp_adam_f(float *theta, const float *g, float *m1, float *m2, float lr, float b1,
                   float c1, float b2, float c2, float eps, ptrdiff_t n);
void fastbp_adam_d(double *theta, const double *g, double *m1, double *m2, double lr,
                   double b1, double c1, double b2, double c2, double eps, ptrdiff_t n);
void fastbp_sgd_f(float *theta, const float *g, float *v, float lr, float mu, int nesterov,
                  ptrdiff_t n);
void fastbp_sgd_d(double *theta, const double *g, double *v, double lr, double mu,
                  int nesterov, ptrdiff_t n);
int fastbp_all_finite_f(const float *x, ptrdiff_t n);
int fastbp_all_finite_d(const double *x, ptrdiff_t n);

#endif
