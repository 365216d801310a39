/* Runs domain_normalize on arbitrary input: every name it accepts must satisfy the
 * ASCII host-name rules, and normalising it again must give it back unchanged. */
#include <stdio.h>

#include "common/names.h"

static bool label_ok(const char *s, size_t n)
{
    if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool ascii_ok(const char *name)
{
    size_t len = strlen(name), labels = 0, start = 0;
    if (len < 3 || len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        if (!label_ok(name + start, i - start))
            return false;
        labels++;
        if (i == len) {
            bool digits = true;
            for (size_t k = start; k < len; k++)
                digits = digits && name[k] >= '0' && name[k] <= '9';
            if (digits)
                return false;
        }
        start = i + 1;
    }
    return labels >= 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *input = malloc(size + 1);
    if (!input)
        return 0;
    memcpy(input, data, size);
    input[size] = 0;

    char *out = NULL;
    const char *why = NULL;
    int r = domain_normalize(input, &out, &why);
    if (r < 0) {
        if (r != -EINVAL || !why || !*why || out)
            abort();
    } else {
        if (!ascii_ok(out)) {
            fprintf(stderr, "bad output '%s'\n", out);
            abort();
        }
        char *again = NULL;
        if (domain_normalize(out, &again, &why) < 0 || !streq(again, out)) {
            fprintf(stderr, "not idempotent: '%s'\n", out);
            abort();
        }
        free(again);
        free(out);
    }
    free(input);
    return 0;
}
