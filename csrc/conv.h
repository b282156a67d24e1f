/* Direct 5x5 convolution and trainable 2x2 mean-pool kernels (LeNet-5).
 *
 * Layout is NCHW, C-contiguous, or, where a `layout` argument says so, samples
 * side by side (FASTBP_BLOCKED_IN: the layer's input and its gradient;
 * FASTBP_BLOCKED_OUT: its output and the output's gradient). In that layout
 * an array of n samples of P elements is ceil(n / BL) blocks of BL samples
 * (16 floats, 8 doubles), each block BL * P elements held in sub-blocks of VL
 * samples, VL the lanes of the instruction set in use (fb_level()): element
 * p of the block's sample l is at [(l / VL)*VL*P + p*VL + l % VL]. Lanes past
 * n hold values that no result depends on (finite where the inputs' lanes
 * are); sub-blocks past n are neither read nor written. The layout depends on
 * the level in use: arrays passed between calls need the same level. Consecutive layers pass these arrays on without transposing them.
 * Every function exists for float (_f32) and double (_f64). Nothing is validated: shapes are trusted (see _conv.pyx).
 * Functions that allocate scratch return 0 on success and -1 when memory
 * runs out (nothing is then guaranteed about the outputs).
 *
 * Results do not depend on n_threads: work is split over samples, and the
 * weight gradients are summed per fixed block of samples and the blocks are
 * reduced in a fixed order.
 */
#ifndef FASTBP_CONV_H
#define FASTBP_CONV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTBP_BLOCKED_IN 1
#define FASTBP_BLOCKED_OUT 2

/* Y = g(valid cross-correlation of X with W over connected maps + b).
 * X (n, c_in, h, w), W (c_out, c_in, 5, 5), b (c_out), table (c_out, c_in)
 * of 0/1 bytes, Y (n, c_out, h - 4, w - 4). Unconnected pairs are skipped. */
int fastbp_conv5x5_forward_f32(const float* X, const float* W, const float* b,
                               const unsigned char* table, float* Y, int n,
                               int c_in, int h, int w, int c_out, int act,
                               int layout, int n_threads);
int fastbp_conv5x5_forward_f64(const double* X, const double* W, const double* b,
                               const unsigned char* table, double* Y, int n,
                               int c_in, int h, int w, int c_out, int act,
                               int layout, int n_threads);

/* grad_W (c_out, c_in, 5, 5) = sum over samples of the correlation of X with
 * dZ (0 for unconnected pairs), grad_b (c_out) = sum of dZ, and, when dX is
 * not NULL, dX (n, c_in, h, w) = full convolution of dZ with the rotated
 * kernels times g_in'(.) computed from X = g_in(z_in).
 * dZ (n, c_out, h - 4, w - 4). */
int fastbp_conv5x5_backward_f32(const float* X, const float* W, const float* dZ,
                                const unsigned char* table, float* grad_W,
                                float* grad_b, float* dX, int n, int c_in, int h,
                                int w, int c_out, int in_act, int layout,
                                int n_threads);
int fastbp_conv5x5_backward_f64(const double* X, const double* W, const double* dZ,
                                const unsigned char* table, double* grad_W,
                                double* grad_b, double* dX, int n, int c_in, int h,
                                int w, int c_out, int in_act, int layout,
                                int n_threads);

/* X = g(coef[c] * mean of each 2x2 block of Y + bias[c]).
 * Y (n, c, h, w) with h, w even, X (n, c, h/2, w/2). A layout with
 * FASTBP_BLOCKED_OUT needs FASTBP_BLOCKED_IN. */
int fastbp_pool2x2_forward_f32(const float* Y, const float* coef, const float* bias,
                               float* X, int n, int c, int h, int w, int act,
                               int layout, int n_threads);
int fastbp_pool2x2_forward_f64(const double* Y, const double* coef,
                               const double* bias, double* X, int n, int c, int h,
                               int w, int act, int layout, int n_threads);

/* grad_coef (c) = sum dZ * MeanPool(Y), grad_bias (c) = sum dZ, and, when dY
 * is not NULL, dY (n, c, h, w) = coef/4 * dZ[i/2, j/2] * g_in'(Y).
 * dZ (n, c, h/2, w/2); FASTBP_BLOCKED_OUT needs FASTBP_BLOCKED_IN. The
 * sums run per sample (each column's rows in
 * order, then the columns in order), then over the samples of each block of
 * BL in order, then over the blocks in order, whatever the layout. */
int fastbp_pool2x2_backward_f32(const float* Y, const float* coef, const float* dZ,
                                float* grad_coef, float* grad_bias, float* dY,
                                int n, int c, int h, int w, int in_act,
                                int layout, int n_threads);
int fastbp_pool2x2_backward_f64(const double* Y, const double* coef,
                                const double* dZ, double* grad_coef,
                                double* grad_bias, double* dY, int n, int c, int h,
                                int w, int in_act, int layout, int n_threads);

/* One layer of a stack (fastbp_conv_stack_*): a call of one of the passes
 * above, with its entry point's arguments (a pooling pass's c as c_in and
 * c_out; its coef as weight; input: X, or Y for pooling; output: Y, or X
 * for pooling; dout: dZ; din: dX, or dY for pooling; act: g, or g_in for a
 * backward pass), the arrays of the stack's dtype. */
#define FASTBP_CONV_FORWARD 0
#define FASTBP_CONV_BACKWARD 1
#define FASTBP_POOL_FORWARD 2
#define FASTBP_POOL_BACKWARD 3
typedef struct {
    int kind;
    const void* input;
    const void* weight;
    const void* bias;
    const void* dout;
    const unsigned char* table;
    void* output;
    void* grad_weight;
    void* grad_bias;
    void* din;
    int c_in, h, w, c_out, act, layout;
} fastbp_conv_layer;

/* Whether layer b reads, side by side, the maps that layer a writes for it
 * (a forward pass's output as b's input, a backward pass's input gradient
 * as b's output gradient): the same array, of the same maps per sample,
 * side by side on both ends. Then c, h and w are the maps' shape. */
int fastbp_conv_hands_on(const fastbp_conv_layer* a, const fastbp_conv_layer* b, int* c,
                         int* h, int* w);

/* The layers' calls in order, on the same n samples: the same results as
 * calling each one's entry point in turn, where each layer reads only what
 * the layers before it hand on (fastbp_conv_hands_on) or arrays that no
 * layer of the stack writes. Where no convolution forward but the first
 * reads NCHW input, no pooling pass forward is on NCHW, and n_threads is at
 * most the blocks of samples, the calls run block by block in one team call
 * (a backward stack, a bounded number of blocks at a time): each block's
 * maps then pass from layer to layer in its thread's caches. With
 * local_links, what a layer hands on side by side to the next (its output,
 * or a backward pass's input gradient) stays there, a block of it in
 * per-thread scratch, and those arrays (but the last layer's) may be left
 * unwritten. */
int fastbp_conv_stack_f32(const fastbp_conv_layer* layers, int count, int n, int n_threads,
                          int local_links);
int fastbp_conv_stack_f64(const fastbp_conv_layer* layers, int count, int n, int n_threads,
                          int local_links);

/* n samples of P elements from NCHW (nchw[i*P + p]) into blk, side by side
 * (see above), when `to` (the lanes past n of the last sub-block zeroed);
 * else from blk back into nchw. */
void fastbp_blocks_f32(float* blk, float* nchw, int n, ptrdiff_t P, int to);
void fastbp_blocks_f64(double* blk, double* nchw, int n, ptrdiff_t P, int to);

#ifdef __cplusplus
}
#endif

#endif
