/* Sharing work inside one OpenMP region with waits of fastbp's own.

   fastbp never sets the OpenMP runtime's wait policy: the runtime is shared
   with every other library in the process. Its barriers spin for a long time
   by default (libgomp: 300,000 pauses), and a thread that spins while its
   partner is descheduled by other work on the cores holds the team up for a
   whole time slice, region after region: a fit 5-10x slower on busy cores.
   A passive policy sleeps instead, but waking a sleeping thread costs tens of
   microseconds, more than a whole layer of a small MLP. So the kernels hand
   out work from an atomic counter and join the team with fb_team_join, which
   spins briefly and then sleeps (Linux) or yields the core, before the region's
   own barrier, which every thread then reaches at about the same time. */
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
#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Sleep while *p still holds seen (returns at once if it no longer does). */
static inline void fb_sleep_while(int* p, int seen) {
    syscall(SYS_futex, p, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}
static inline void fb_wake_all(int* p) {
    syscall(SYS_futex, p, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#define FB_HAVE_SLEEP 1
#endif
static inline int fb_fetch_add(int* p, int v) {
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
static inline int fb_load(int* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
#endif

/* A team of nt threads (no team for one) that shares units of work:
       int units = 0, joined = 0;
       FB_TEAM(nt)
       {
           int u;
           FB_FOR_UNITS(u, count, &units) work(u);
           fb_team_join(&joined);
       }
   Units go to whichever thread asks first, so results must not depend on
   which thread runs a unit (per-thread scratch by omp_get_thread_num only). */
#if !defined(_OPENMP)
#define FB_TEAM(nt) (void)(nt);
#elif defined(_MSC_VER)
#define FB_TEAM(nt) __pragma(omp parallel num_threads(nt) if ((nt) > 1))
#else
#define FB_PRAGMA_(x) _Pragma(#x)
#define FB_TEAM(nt) FB_PRAGMA_(omp parallel num_threads(nt) if ((nt) > 1))
#endif
#define FB_FOR_UNITS(u, count, counter) \
    for ((u) = fb_next_unit(counter); (u) < (count); (u) = fb_next_unit(counter))

/* Spins (tens of microseconds) before a waiting thread gives up its core. */
#define FB_JOIN_SPINS 2000

/* The next unit of work for this thread: counter starts at 0 and is shared
   by the team; units are taken in order, whatever thread takes them. */
static inline int fb_next_unit(int* counter) { return fb_fetch_add(counter, 1); }

/* Wait until every thread of the team has called this with the same counter
   (zeroed before the region, one counter per join point). Each thread's
   writes before the call are visible to all threads after it. A waiter
   spins briefly, then sleeps (Linux: on the counter itself, woken by the
   last thread in; elsewhere it yields the core in a loop): a sleeping
   thread's core is free to run its descheduled partner. */
static inline void fb_team_join(int* arrived) {
    int team = omp_get_num_threads(), spins = 0, seen;
    if (fb_fetch_add(arrived, 1) + 1 == team) {
#ifdef FB_HAVE_SLEEP
        if (team > 1)
            fb_wake_all(arrived);
#endif
        return;
    }
    while ((seen = fb_load(arrived)) < team) {
        if (spins < FB_JOIN_SPINS) {
            fb_pause();
            ++spins;
        } else {
#ifdef FB_HAVE_SLEEP
            fb_sleep_while(arrived, seen);
#else
            fb_yield();
#endif
        }
    }
}

#endif
