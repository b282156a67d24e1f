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

/* How long a waiting thread spins before it gives up its core, by the
 * clock: a count of pauses is no measure of time. 2,000 pauses lasted 40-60
 * us on an AMD EPYC (Zen 3) VM; Intel gives about 140 cycles a pause since
 * Skylake, and ARM's yield costs next to nothing. On that VM, a call that had
 * to wake a sleeping thread took 50-100 us longer, and the gaps between a
 * LeNet-5 batch's team calls (the row gather, the step, the layers that run
 * on one thread) are tens of microseconds. On cores busy with other work, a
 * spinning thread gives them up after this time too. */
#define FB_SPIN_NS 150000
/* Pauses between two readings of the clock while spinning. */
#define FB_SPIN_CHECK 32

#if defined(__unix__) || defined(__APPLE__) /* the POSIX team's waits (team.c) */
#include <time.h>
static inline long long fb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A wait's spin: fb_spin_once pauses and returns 1 until FB_SPIN_NS have
 * passed since the wait's first pause, then returns 0 (and stays 0). A spin
 * started with `expired` set returns 0 at once: the waiter sleeps. */
typedef struct {
    long long start; /* ns, or -1 before the first reading */
    int pauses, expired;
} fb_spin;

static inline void fb_spin_start(fb_spin* s, int expired)
{
    s->start = -1;
    s->pauses = 0;
    s->expired = expired;
}

static inline int fb_spin_once(fb_spin* s)
{
    if (s->expired)
        return 0;
    if (s->pauses++ % FB_SPIN_CHECK == 0) {
        const long long now = fb_now_ns();
        if (s->start < 0)
            s->start = now;
        else if (now - s->start >= FB_SPIN_NS)
            return !(s->expired = 1);
    }
    fb_pause();
    return 1;
}
#endif

#endif
