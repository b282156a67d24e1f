/* fastbp's own thread team (fb_team.h says what and why); compiled into every
 * kernel module, each bound to the one in fastbp._kernels._team. */
#include "fb_team.h"

#include "fastbp_omp.h"
#include "fastbp_sync.h"

FB_HIDDEN fb_team_run_fn fastbp_team_run = fastbp_team_run_own;

FB_HIDDEN void fastbp_team_bind(fb_team_run_fn run) { fastbp_team_run = run; }

/* Units 0..count-1, whichever thread asks first (one thread, or OpenMP's). */
static void fb_take_units(int* next, int count, fb_unit_fn unit, void* job, int slot)
{
    int u;
    while ((u = fb_fetch_add(next, 1)) < count)
        unit(job, u, slot);
}

#if FB_TEAM_POSIX

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

static int fb_share_start(int count, int nt, int s) { return (int)((long long)count * s / nt); }

/* Threads of one team at most (more are never asked for: the estimators
 * cap n_jobs at the cores). */
#define FB_TEAM_MAX 256
/* Set in `entry` once the caller has closed a call: no thread joins it. */
#define FB_CLOSED (1 << 30)

typedef struct fb_team fb_team;

/* A slot's share of a call's units, on a cache line of its own. */
typedef struct {
    int taken; /* units of the share handed out so far */
    char pad[60];
} fb_share;

typedef struct {
    fb_team* team;
    int slot;
    int calls; /* the team's call count when the thread was started */
} fb_seat;

struct fb_team {
    /* The call in hand, written by the caller before it opens `entry`. */
    fb_unit_fn unit;
    void* job;
    int count, nt;
    fb_share share[FB_TEAM_MAX]; /* units by slot: see fb_take_shares */
    int entry;    /* threads that joined the call, | FB_CLOSED once closed */
    int left;     /* threads that have finished with it */
    int calls;    /* bumped for each call: idle threads wait for it to change */
    int sleepers; /* threads asleep on `calls` */
    int caller_asleep;
    int stop;
    int size; /* threads started, in slots 1..size */
    int cannot_grow; /* a thread failed to start: run with those there are */
    pthread_t thread[FB_TEAM_MAX];
    fb_seat seat[FB_TEAM_MAX];
#ifndef FB_HAVE_SLEEP
    pthread_mutex_t lock;
    pthread_cond_t wake;
#endif
};

static inline int fb_cas(int* p, int* expected, int desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
static inline void fb_store(int* p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline int fb_load_sc(int* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

/* Sleep while *p == seen; fb_team_wake(p) after changing *p wakes it. */
/* The units of the call in hand for the thread in `slot`: first its own
 * share, units [count s / nt, count (s + 1) / nt), then what is left of the
 * others'. A kernel numbers its units in the order of their data (rows,
 * blocks of samples), so from one call to the next a thread tends to get
 * the same part of the data, still in its caches (a share taken at the
 * previous call, or written by it); a late or descheduled thread costs
 * nothing, since the others take its share. */
static void fb_take_shares(fb_team* t, int nt, int slot)
{
    int i, s, lo, hi, u;
    for (i = 0; i < nt; i++) {
        s = (slot + i) % nt;
        lo = fb_share_start(t->count, nt, s);
        hi = fb_share_start(t->count, nt, s + 1);
        while ((u = lo + fb_fetch_add(&t->share[s].taken, 1)) < hi)
            t->unit(t->job, u, slot);
    }
}

static void fb_team_sleep(fb_team* t, int* p, int seen)
{
#ifdef FB_HAVE_SLEEP
    (void)t;
    fb_sleep_while(p, seen);
#else
    pthread_mutex_lock(&t->lock);
    while (fb_load_sc(p) == seen)
        pthread_cond_wait(&t->wake, &t->lock);
    pthread_mutex_unlock(&t->lock);
#endif
}

static void fb_team_wake(fb_team* t, int* p)
{
#ifdef FB_HAVE_SLEEP
    (void)t;
    fb_wake_all(p);
#else
    (void)p;
    pthread_mutex_lock(&t->lock);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
#endif
}

/* Wait until *p != seen: spin briefly (unless `spin` is 0), then sleep,
 * counted in *sleepers so that whoever changes *p knows to wake us. Returns
 * the new value. */
static int fb_wait_change(fb_team* t, int* p, int seen, int* sleepers, int spin)
{
    fb_spin s;
    int v;
    fb_spin_start(&s, !spin);
    while ((v = fb_load_sc(p)) == seen) {
        if (!fb_spin_once(&s)) {
            fb_fetch_add(sleepers, 1);
            fb_team_sleep(t, p, seen);
            fb_fetch_add(sleepers, -1);
        }
    }
    return v;
}

static void* fb_team_thread(void* arg)
{
    fb_seat* seat = (fb_seat*)arg;
    fb_team* t = seat->team;
    /* From the count at its start, not at its first run: the owner may have
     * called, or exited and stopped the team, before this thread ran. */
    int seen = seat->calls, entry, needed = 1;
    for (;;) {
        /* a thread the last call did not need sleeps at once: with more
         * threads than a kernel uses, the spare ones do not spin */
        seen = fb_wait_change(t, &t->calls, seen, &t->sleepers, needed);
        if (fb_load_sc(&t->stop))
            return NULL;
        /* nt is written before `calls` changes, so it is this call's or a
         * later one's: a thread it does not need stays out, and the caller
         * never waits for it */
        needed = seat->slot < fb_load_sc(&t->nt);
        if (!needed)
            continue;
        entry = fb_load_sc(&t->entry);
        do {
            if (entry & FB_CLOSED)
                break;
        } while (!fb_cas(&t->entry, &entry, entry + 1));
        if (entry & FB_CLOSED)
            continue;
        /* In the call: it stays open, and its fields stay put, until this
         * thread has left. */
        seen = fb_load_sc(&t->calls);
        if (seat->slot < fb_load_sc(&t->nt))
            fb_take_shares(t, fb_load_sc(&t->nt), seat->slot);
        fb_fetch_add(&t->left, 1);
        if (fb_load_sc(&t->caller_asleep))
            fb_team_wake(t, &t->left);
    }
}

static pthread_key_t fb_team_key;
static pthread_once_t fb_team_once = PTHREAD_ONCE_INIT;

/* Stop and join a team's threads: when the thread that owns it exits. */
static void fb_team_free(void* arg)
{
    fb_team* t = (fb_team*)arg;
    int i;
    fb_store(&t->stop, 1);
    fb_fetch_add(&t->calls, 1);
    fb_team_wake(t, &t->calls);
    for (i = 1; i <= t->size; i++)
        pthread_join(t->thread[i], NULL);
#ifndef FB_HAVE_SLEEP
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
#endif
    free(t);
}

/* A forked child has only the forking thread: its team's threads are gone. */
static void fb_team_forget_after_fork(void) { pthread_setspecific(fb_team_key, NULL); }

static void fb_team_init_once(void)
{
    pthread_key_create(&fb_team_key, fb_team_free);
    pthread_atfork(NULL, NULL, fb_team_forget_after_fork);
}

/* This thread's team, with at least nt - 1 threads started where the system
 * allows; NULL when it cannot have one. */
static fb_team* fb_team_of_this_thread(int nt)
{
    fb_team* t;
    sigset_t all, old;
    pthread_once(&fb_team_once, fb_team_init_once);
    t = (fb_team*)pthread_getspecific(fb_team_key);
    if (t == NULL) {
        t = (fb_team*)calloc(1, sizeof(fb_team));
        if (t == NULL)
            return NULL;
#ifndef FB_HAVE_SLEEP
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->wake, NULL);
#endif
        if (pthread_setspecific(fb_team_key, t) != 0) {
            fb_team_free(t);
            return NULL;
        }
    }
    if (nt > FB_TEAM_MAX)
        nt = FB_TEAM_MAX;
    if (t->size < nt - 1 && !t->cannot_grow) {
        /* Signals go to the Python threads, never to ours. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        while (t->size < nt - 1) {
            fb_seat* seat = &t->seat[t->size + 1];
            seat->team = t;
            seat->slot = t->size + 1;
            seat->calls = t->calls;
            if (pthread_create(&t->thread[t->size + 1], NULL, fb_team_thread, seat) != 0) {
                t->cannot_grow = 1;
                break;
            }
            t->size++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return t;
}

FB_HIDDEN void fastbp_team_run_own(int nt, int count, fb_unit_fn unit, void* job)
{
    fb_team* t;
    int next = 0, entered, left, i;
    fb_spin s;
    if (nt > count)
        nt = count;
    t = nt > 1 ? fb_team_of_this_thread(nt) : NULL;
    if (t == NULL || t->size == 0) {
        fb_take_units(&next, count, unit, job, 0);
        return;
    }
    if (nt > t->size + 1)
        nt = t->size + 1;
    t->unit = unit;
    t->job = job;
    t->count = count;
    fb_store(&t->nt, nt);
    for (i = 0; i < nt; i++)
        fb_store(&t->share[i].taken, 0);
    fb_store(&t->left, 0);
    fb_store(&t->entry, 0); /* open the call */
    fb_fetch_add(&t->calls, 1);
    if (fb_load_sc(&t->sleepers) > 0)
        fb_team_wake(t, &t->calls);
    fb_take_shares(t, nt, 0);
    /* Close the call, then wait for the threads that joined it. */
    entered = fb_fetch_add(&t->entry, FB_CLOSED);
    fb_spin_start(&s, 0);
    while ((left = fb_load_sc(&t->left)) < entered) {
        if (!fb_spin_once(&s)) {
            fb_store(&t->caller_asleep, 1);
            if (fb_load_sc(&t->left) == left)
                fb_team_sleep(t, &t->left, left);
            fb_store(&t->caller_asleep, 0);
        }
    }
}

#else /* no POSIX threads: an OpenMP region, or the calling thread alone */

#if !defined(_OPENMP)
#define FB_TEAM(nt) (void)(nt);
#elif defined(_MSC_VER)
#define FB_TEAM(nt) __pragma(omp parallel num_threads(nt) if ((nt) > 1))
#else
#define FB_PRAGMA_(x) _Pragma(#x)
#define FB_TEAM(nt) FB_PRAGMA_(omp parallel num_threads(nt) if ((nt) > 1))
#endif

FB_HIDDEN void fastbp_team_run_own(int nt, int count, fb_unit_fn unit, void* job)
{
    int next = 0;
    if (nt > count)
        nt = count;
    FB_TEAM(nt)
    {
        fb_take_units(&next, count, unit, job, omp_get_thread_num());
    }
}

#endif
