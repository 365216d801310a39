/* libFuzzer target for the chunked decoder: the input is decoded whole and in two
 * pieces split where the fuzzer chooses; the decoded data, the bytes after the
 * body and the result must agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cut = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    cut %= size + 1;

    /* whole */
    struct http1_chunked c;
    char *w = malloc(size + 1);
    CHECK(w);
    memcpy(w, data, size);
    size_t wlen = size, wextra = 0;
    http1_chunked_init(&c);
    int rw = http1_chunked_decode(&c, w, &wlen, &wextra);
    CHECK(rw == 1 || rw == HTTP1_INCOMPLETE || rw == -400);
    if (rw >= 0) {
        CHECK(wlen + wextra <= size && c.total == wlen);
        if (rw == 1)
            CHECK(memcmp(w + wlen, data + size - wextra, wextra) == 0);
    }

    /* split: two pieces, each in its own allocation */
    char *out = malloc(size + 1), *extra = malloc(size + 1);
    CHECK(out && extra);
    size_t olen = 0, elen = 0;
    int rs = HTTP1_INCOMPLETE;
    http1_chunked_init(&c);
    for (int k = 0; k < 2 && rs >= 0; k++) {
        size_t from = k ? cut : 0, n = k ? size - cut : cut, x = 0;
        char *piece = malloc(n + 1);
        CHECK(piece);
        memcpy(piece, data + from, n);
        if (rs == 1) {
            memcpy(extra + elen, piece, n);
            elen += n;
        } else {
            rs = http1_chunked_decode(&c, piece, &n, &x);
            if (rs >= 0) {
                memcpy(out + olen, piece, n);
                olen += n;
                memcpy(extra + elen, piece + n, x);
                elen += x;
            }
        }
        free(piece);
    }
    CHECK(rs == rw);
    if (rw >= 0) {
        CHECK(olen == wlen && memcmp(out, w, wlen) == 0);
        CHECK(elen == wextra && memcmp(extra, w + wlen, wextra) == 0);
    }
    free(out);
    free(extra);
    free(w);
    return 0;
}
