/* A growable byte buffer with a hard maximum (curl's dynbuf): every buffer a peer
 * fills has one, so no peer can make berth allocate without bound. The data is
 * always NUL-terminated for convenience; len does not count the NUL. */
#pragma once

#include <stdarg.h>

#include "common/util.h"

struct buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated (excluding the NUL slot) */
    size_t max;   /* hard limit on len; appends past it fail with -ENOBUFS */
};

#define BUF_INIT(maximum) ((struct buf){ .max = (maximum) })

void buf_init(struct buf *b, size_t max);
/* Frees the contents; the buffer can be reused after buf_init. NULL-safe. */
void buf_done(struct buf *b);
/* Ensures room for n more bytes. -ENOBUFS past max, -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer, keeping its allocation. */
void buf_clear(struct buf *b);
/* Returns the NUL-terminated contents (never NULL; caller frees) and empties b. */
char *buf_steal(struct buf *b);
