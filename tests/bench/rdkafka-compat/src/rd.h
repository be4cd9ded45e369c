/*
 * Stand-in for librdkafka's private src/rd.h, so that the rdkafka_performance.c shipped in
 * Debian's librdkafka-dev (/usr/share/doc/librdkafka-dev/examples/) compiles outside the
 * librdkafka source tree. It defines only what that example uses: rd_ts_t, rd_clock(),
 * rd_snprintf, RD_MIN and RD_MAX. tests/bench/rdkafka.sh passes -I to this directory, so the
 * example's `#include "../src/rd.h"`, `"rd.h"` and `"rdtime.h"` all land here.
 */
#ifndef STRATA_BENCH_RD_H
#define STRATA_BENCH_RD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the example defines it again, identically */
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Microseconds, as in librdkafka's rdtime.h. */
typedef int64_t rd_ts_t;

/* Monotonic clock in microseconds (librdkafka's rd_clock() uses CLOCK_MONOTONIC too). */
static inline rd_ts_t rd_clock(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ((rd_ts_t)ts.tv_sec * 1000000LL) + ((rd_ts_t)ts.tv_nsec / 1000);
}

#define rd_snprintf(...) snprintf(__VA_ARGS__)

#define RD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RD_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* STRATA_BENCH_RD_H */
