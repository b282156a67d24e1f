/* Floating-point code generation of fastbp's C kernels (include first).
 *
 * setup.py turns off the fusing of a*b + c into one FMA for the Cython code:
 * there a loop over a flat vector is cut where the thread count says, and an
 * element would round differently in the vector body (fused) than in the
 * scalar remainder (GCC on aarch64 fused one and not the other), so results
 * would depend on the thread count. The C kernels cut their work by shape
 * only, so they turn FMAs back on here: each element is computed by the same
 * instructions whatever the thread count.
 *
 * Clamps and selects only if-convert (and so vectorize) when GCC may ignore
 * floating-point exception flags, which fastbp never reads. Results do not
 * change.
 */
#ifndef FASTBP_FP_H
#define FASTBP_FP_H

#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#endif
