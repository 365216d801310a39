/* A failure with a human sentence, for operations whose caller must tell a user
 * precisely what was wrong (API answers, CLI lines). code is a negative errno and
 * decides the class of failure: -EINVAL bad input, -ENOENT no such thing, -EEXIST or
 * -EADDRINUSE a conflict, -EBUSY in use, anything else an internal failure. */
#pragma once

#include "common/util.h"

struct error {
    int code;
    char message[512];
};

/* Fills e (if not NULL) and returns code (negative), for `return error_set(e, -EINVAL, ...)`. */
int error_set(struct error *e, int code, const char *fmt, ...) _printf_(3, 4);
