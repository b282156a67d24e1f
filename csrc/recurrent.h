/* The vanilla RNN's time loop (forward and BPTT) over a packed batch, compiled
 * into fastbp._kernels._rnn; the layout and the equations are in _rnn.pyx.
 *
 *   fastbp_rnn_forward_*:  H[block t] = f(P[block t] + H[block t-1][:b_t] @ W),
 *                          H[block 0] = f(P[block 0]); H may be P itself.
 *   fastbp_rnn_backward_*: delta[block t] = f'(z_t) * (dH[block t] + c_t),
 *                          c_t[:nb_t] = delta[block t+1] @ W^T with
 *                          nb_t = batch_sizes[t+1] (0 at the last step and
 *                          where t + 1 starts a window of `window` steps;
 *                          window 0: full BPTT); delta may be dH itself.
 *
 * `batch_sizes` (T entries, positive, non-increasing) must sum to the rows of
 * the arrays; the callers check it. Each returns 0, or -1 when out of memory.
 *
 * The product with W is not a BLAS call: W is packed once per call into
 * column panels, and one register-tiled kernel computes each tile of a step;
 * the activation (or its derivative) follows while the rows are in cache.
 * The sequences (rows of the first step) are cut into up to n_threads slices,
 * each a unit of fastbp's team (fb_team.h) that runs every step, so no
 * thread waits for another between steps. Every element is summed in the
 * same order whatever the thread count, so results do not depend on it.
 */
#ifndef FASTBP_RECURRENT_H
#define FASTBP_RECURRENT_H

#include <stddef.h>

int fastbp_rnn_forward_f(const float *P, const float *W, const ptrdiff_t *batch_sizes,
                         ptrdiff_t T, int n, float *H, int act, int n_threads);
int fastbp_rnn_forward_d(const double *P, const double *W, const ptrdiff_t *batch_sizes,
                         ptrdiff_t T, int n, double *H, int act, int n_threads);
int fastbp_rnn_backward_f(const float *H, const float *W, const ptrdiff_t *batch_sizes,
                          ptrdiff_t T, int n, ptrdiff_t n_rows, const float *dH,
                          float *delta, int act, int n_threads, ptrdiff_t window);
int fastbp_rnn_backward_d(const double *H, const double *W, const ptrdiff_t *batch_sizes,
                          ptrdiff_t T, int n, ptrdiff_t n_rows, const double *dH,
                          double *delta, int act, int n_threads, ptrdiff_t window);

#endif
