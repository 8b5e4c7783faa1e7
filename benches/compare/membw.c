/*
 * Memory bandwidth with N threads, for the decode roofline of benches/compare/compare.py.
 *
 * Each thread owns one contiguous slice of a buffer much larger than the caches. "read" sums
 * the slice as 64-bit integers (what a matrix-vector product does with its weights), and
 * "copy" copies it to a second buffer with memcpy. Each test runs REPS times after one
 * untimed pass, and the fastest pass counts, as STREAM does. The copy rate counts the bytes
 * read plus the bytes written.
 *
 * Build: gcc -O2 -pthread membw.c -o membw
 * Usage: membw THREADS [MIB] [REPS]   (defaults: 1024 MiB per buffer, 5 passes)
 * Output: one JSON object, rates in GB/s (10^9 bytes per second).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum test { READ, COPY };

struct worker {
    pthread_t thread;
    pthread_barrier_t *start;
    enum test test;
    const uint64_t *src;
    uint64_t *dst;
    size_t words;
    uint64_t sum;
};

static void *run_worker(void *arg) {
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    if (w->test == READ) {
        /* Four chains, so the adds are not one serial dependency. */
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i = 0;
        for (; i + 4 <= w->words; i += 4) {
            s0 += w->src[i];
            s1 += w->src[i + 1];
            s2 += w->src[i + 2];
            s3 += w->src[i + 3];
        }
        for (; i < w->words; i++) {
            s0 += w->src[i];
        }
        w->sum = s0 + s1 + s2 + s3;
    } else {
        memcpy(w->dst, w->src, w->words * sizeof(uint64_t));
    }
    return NULL;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Runs one pass of `test` on `threads` threads and returns its wall time in seconds. */
static double run_pass(enum test test, int threads, const uint64_t *src, uint64_t *dst, size_t words,
                       uint64_t *checksum) {
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    pthread_barrier_t start;
    if (workers == NULL || pthread_barrier_init(&start, NULL, (unsigned)threads + 1) != 0) {
        fprintf(stderr, "membw: failed to set up %d threads\n", threads);
        exit(1);
    }
    size_t per_thread = words / (size_t)threads;
    for (int t = 0; t < threads; t++) {
        struct worker *w = &workers[t];
        size_t first = (size_t)t * per_thread;
        w->start = &start;
        w->test = test;
        w->src = src + first;
        w->dst = dst + first;
        w->words = t == threads - 1 ? words - first : per_thread;
        if (pthread_create(&w->thread, NULL, run_worker, w) != 0) {
            fprintf(stderr, "membw: failed to start thread %d\n", t);
            exit(1);
        }
    }
    double begin = now_seconds();
    pthread_barrier_wait(&start);
    for (int t = 0; t < threads; t++) {
        pthread_join(workers[t].thread, NULL);
        *checksum += workers[t].sum;
    }
    double seconds = now_seconds() - begin;
    pthread_barrier_destroy(&start);
    free(workers);
    return seconds;
}

/* Returns the fastest of `reps` timed passes, after one untimed pass. */
static double best_pass(enum test test, int threads, const uint64_t *src, uint64_t *dst, size_t words, int reps,
                        uint64_t *checksum) {
    run_pass(test, threads, src, dst, words, checksum);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double seconds = run_pass(test, threads, src, dst, words, checksum);
        if (seconds < best) {
            best = seconds;
        }
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: membw THREADS [MIB] [REPS]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    long mib = argc > 2 ? atol(argv[2]) : 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || threads > 1024 || mib < 1 || reps < 1) {
        fprintf(stderr, "membw: invalid arguments: THREADS must be 1 to 1024, MIB and REPS at least 1\n");
        return 2;
    }

    size_t bytes = (size_t)mib << 20;
    size_t words = bytes / sizeof(uint64_t);
    uint64_t *src = malloc(bytes);
    uint64_t *dst = malloc(bytes);
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "membw: failed to allocate two buffers of %ld MiB\n", mib);
        return 1;
    }
    /* Touch every page, so the timed passes measure memory and not page faults. */
    for (size_t i = 0; i < words; i++) {
        src[i] = i;
    }
    memset(dst, 0, bytes);

    uint64_t checksum = 0;
    double read_seconds = best_pass(READ, threads, src, dst, words, reps, &checksum);
    double copy_seconds = best_pass(COPY, threads, src, dst, words, reps, &checksum);
    checksum += dst[words / 2];

    printf("{\"threads\": %d, \"buffer_mib\": %ld, \"passes\": %d, \"read_gbps\": %.2f, \"copy_gbps\": %.2f, "
           "\"checksum\": %llu}\n",
           threads, mib, reps, (double)bytes / read_seconds / 1e9, 2.0 * (double)bytes / copy_seconds / 1e9,
           (unsigned long long)checksum);
    free(src);
    free(dst);
    return 0;
}
