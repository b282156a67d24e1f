/* OpenMP shim: the same sources build with and without OpenMP. */
#ifndef FASTBP_OMP_H
#define FASTBP_OMP_H

#ifdef _OPENMP
#include <omp.h>
#define FASTBP_HAVE_OPENMP 1
#else
#define FASTBP_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

/* Element-wise work below this many elements runs on one thread. Waking a
   sleeping thread costs tens of microseconds (80 us measured on a 2-core VM
   with a passive OpenMP team), about what one thread takes for 2^18 elements
   of an update or activation pass; at 16384, LeNet-5's small batches ran
   slower on two threads than on one. Results never depend on it. */
#define FASTBP_MIN_PARALLEL 262144

#endif
