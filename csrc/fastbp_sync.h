/* The atomics, pauses and sleeps of fastbp's thread team (team.c). */
#ifndef FASTBP_SYNC_H
#define FASTBP_SYNC_H

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
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline int fb_load(int* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
#endif

/* Spins (tens of microseconds) before a waiting thread gives up its core. */
#define FB_JOIN_SPINS 2000

#endif
