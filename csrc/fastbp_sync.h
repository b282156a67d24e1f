/* Sharing work inside one OpenMP region without sleeping through short waits.

   A thread that blocks in libgomp's barrier under the passive wait policy
   (fastbp's default) sleeps in the kernel, and waking it costs tens of
   microseconds on a virtual machine: more than a whole layer of a small
   MLP. The fused kernels therefore hand out work from an atomic counter and
   join the team with fb_team_join, which spins briefly and then yields the
   core while it waits, so a descheduled partner can still run on a busy
   machine. Waits are short: they last as long as the partner's last unit. */
#ifndef FASTBP_SYNC_H
#define FASTBP_SYNC_H

#include "fastbp_omp.h"

#if defined(_MSC_VER)
#include <intrin.h>
#include <windows.h>
#define fb_pause() YieldProcessor()
#define fb_yield() SwitchToThread()
static inline int fb_fetch_add(int* p, int v) {
    return (int) _InterlockedExchangeAdd((volatile long*) p, (long) v);
}
static inline int fb_load(int* p) {
    return (int) _InterlockedCompareExchange((volatile long*) p, 0, 0);
}
#else
#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#define fb_pause() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define fb_pause() __asm__ __volatile__("yield" ::: "memory")
#else
#define fb_pause() ((void) 0)
#endif
#define fb_yield() sched_yield()
static inline int fb_fetch_add(int* p, int v) {
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
static inline int fb_load(int* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
#endif

/* Spins (about 25-50 us) before a waiting thread starts yielding its core. */
#define FB_JOIN_SPINS 2000

/* The next unit of work for this thread: counter starts at 0 and is shared
   by the team; units are taken in order, whatever thread takes them. */
static inline int fb_next_unit(int* counter) { return fb_fetch_add(counter, 1); }

/* Wait until every thread of the team has called this with the same counter
   (zeroed before the region, one counter per join point). Each thread's
   writes before the call are visible to all threads after it. */
static inline void fb_team_join(int* arrived) {
    int team = omp_get_num_threads(), spins = 0;
    fb_fetch_add(arrived, 1);
    while (fb_load(arrived) < team) {
        if (spins < FB_JOIN_SPINS) {
            fb_pause();
            ++spins;
        } else {
            fb_yield();
        }
    }
}

#endif
