/* CHECK for the test programs that run under kos and natively: a failed
 * check prints one line (file, line, condition, errno) and is counted in
 * `failures`, which the program returns. */
#pragma once

#include <errno.h>
#include <stdio.h>

static int failures;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
            ++failures;                                                               \
        }                                                                             \
    } while (0)
