/* Stress test of csrc/team.c (tests/test_team.py builds and runs it, under
   ThreadSanitizer where the compiler has it): several caller threads, many
   calls each with random unit counts and team sizes. Every unit must run
   exactly once, and the caller must see every unit's write when the call
   returns; callers that exit take their teams with them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "fb_team.h"

typedef struct { int* hits; int count; long long* sum; } job_t;

static void unit(void* job, int u, int slot) {
    job_t* j = (job_t*)job;
    j->hits[u] += 1;               /* plain write: a race or a double run shows */
    j->sum[slot] += u + 1;
}

static void* caller(void* arg) {
    unsigned seed = (unsigned)(size_t)arg;
    int hits[512];
    long long sum[8];
    for (int it = 0; it < 20000; it++) {
        int count = rand_r(&seed) % 300 + 1, nt = rand_r(&seed) % 4 + 1;
        job_t j = {hits, count, sum};
        for (int u = 0; u < count; u++) hits[u] = 0;
        for (int s = 0; s < 8; s++) sum[s] = 0;
        fastbp_team_run_own(nt, count, unit, &j);
        long long total = 0;
        for (int u = 0; u < count; u++) if (hits[u] != 1) { printf("unit %d ran %d times\n", u, hits[u]); exit(1); }
        for (int s = 0; s < 8; s++) total += sum[s];
        if (total != (long long)count * (count + 1) / 2) { printf("lost writes\n"); exit(1); }
    }
    return NULL;
}

/* One call, then the thread exits: its team is stopped and joined while
   the team's thread may not have run yet. */
static void* one_call(void* arg) {
    int hits[64];
    long long sum[8];
    job_t j = {hits, 64, sum};
    (void)arg;
    for (int u = 0; u < 64; u++) hits[u] = 0;
    fastbp_team_run_own(2, 64, unit, &j);
    for (int u = 0; u < 64; u++) if (hits[u] != 1) { printf("unit %d ran %d times\n", u, hits[u]); exit(1); }
    return NULL;
}

int main(void) {
    pthread_t t[3];
    alarm(300); /* a hang (a lost wake-up, a join that never returns) fails */
    for (int i = 0; i < 200; i++) {
        pthread_t one;
        pthread_create(&one, NULL, one_call, NULL);
        pthread_join(one, NULL);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, caller, (void*)(size_t)(i + 1 + 10 * round));
        for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);   /* teams end with their threads */
    }
    caller((void*)7);
    puts("ok");
    return 0;
}
