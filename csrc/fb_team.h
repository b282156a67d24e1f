/* fastbp's own thread team: units of work shared by up to nt threads.
 *
 *     void unit(void* job, int u, int slot) { ...unit u of the job... }
 *     fb_team_run(nt, count, unit, &job);
 *
 * runs unit(job, u, slot) once for each u in 0..count-1 and returns when all
 * are done, their writes visible to the caller. Each thread takes the units
 * of its own share first (slot s: units count s / nt up to count (s + 1) /
 * nt, so from call to call it tends to meet the same data in its caches),
 * then helps with what is left of the others'. Which thread runs a unit
 * depends on timing, so a unit's result must not depend on it; `slot`
 * (0..nt-1) only names per-thread scratch, which no two threads of a call
 * share.
 *
 * Why not an OpenMP region: the OpenMP runtime is shared with every other
 * library in the process, and fastbp leaves its wait policy alone. libgomp's
 * idle threads then spin for 300,000 pauses after every region; on cores
 * busy with other work, a spinning thread uses up its share of the core and
 * is descheduled, and the next region waits a whole time slice for it:
 * LeNet-5 and the RNN, which run tens of regions a batch, fitted 5-10x
 * slower. fastbp's team differs in two ways:
 *   - its threads spin briefly (FB_SPIN_NS, 150 us) for the next call,
 *     then sleep (a futex on Linux, a condition variable elsewhere);
 *   - the caller never waits for a thread that has not started: it runs
 *     the units itself, closes the call, and waits only for the threads
 *     that took part. A descheduled thread costs the call nothing.
 *
 * Each calling thread gets its own team (created on first use, joined when
 * that thread exits), so concurrent fits in several Python threads never
 * share one. One process-wide implementation: _team owns it and every
 * kernel module binds to it when imported (fastbp_team_bind), as with the
 * dispatch level. Without POSIX threads (Windows) the units run in an
 * OpenMP region; without either, on the calling thread.
 */
#ifndef FASTBP_FB_TEAM_H
#define FASTBP_FB_TEAM_H

#include "fb_dispatch.h" /* FB_HIDDEN */

/* 1 where a call can run on more than one thread. */
#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#define FB_TEAM_POSIX 1
#define FB_TEAM_THREADS 1
#else
#define FB_TEAM_POSIX 0
#ifdef _OPENMP
#define FB_TEAM_THREADS 1
#else
#define FB_TEAM_THREADS 0
#endif
#endif

typedef void (*fb_unit_fn)(void* job, int unit, int slot);
typedef void (*fb_team_run_fn)(int nt, int count, fb_unit_fn unit, void* job);

/* The implementation in use: this module's own until bound to _team's. */
extern FB_HIDDEN fb_team_run_fn fastbp_team_run;

static inline void fb_team_run(int nt, int count, fb_unit_fn unit, void* job)
{
    fastbp_team_run(nt, count, unit, job);
}

/* This module's implementation (what _team exports for the others). */
FB_HIDDEN void fastbp_team_run_own(int nt, int count, fb_unit_fn unit, void* job);
FB_HIDDEN void fastbp_team_bind(fb_team_run_fn run);

#endif
