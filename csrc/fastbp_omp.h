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

#endif
