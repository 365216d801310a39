/* Decodes arbitrary bytes as a usage history file (stats.bin). The input is the
 * file without its checksum, which is computed here, so that the fuzzer reaches the
 * parser behind it rather than stopping at the checksum. Whatever decodes must
 * encode and decode again to the same sites. */
#include <stdio.h>

#include "sites/sites.h"

#define NOW 1800000000   /* the minutes of the seed corpus are around this time */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file = malloc(size + 8);
    if (!file)
        return 0;
    memcpy(file, data, size);
    uint64_t h = fnv1a(data, size);
    for (size_t i = 0; i < 8; i++)
        file[size + i] = (uint8_t)(h >> (8 * i));

    struct sites_stats *st = NULL, *again = NULL;
    struct buf out = BUF_INIT(SITES_STATS_FILE_MAX);
    if (sites_stats_new(NOW, &st) < 0)
        goto out;
    int n = sites_stats_decode(st, file, size + 8, NOW, NULL, NULL);
    if (n < 0) {
        if (n != -EBADMSG && n != -EPROTONOSUPPORT && n != -ENOMEM)
            abort();
        goto out;
    }
    if (sites_stats_encode(st, &out) < 0 || sites_stats_new(NOW, &again) < 0)
        goto out;
    if (sites_stats_decode(again, out.data, out.len, NOW, NULL, NULL) != n)
        abort();
out:
    buf_done(&out);
    sites_stats_free(again);
    sites_stats_free(st);
    free(file);
    return 0;
}
