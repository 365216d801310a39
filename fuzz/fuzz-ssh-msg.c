/* Runs the broker's decoder on arbitrary packets: what it accepts must encode back
 * to the same bytes. */
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ssh_msg m;
    if (ssh_msg_decode(data, size, &m) < 0)
        return 0;
    char fields[SSH_MSG_FIELDS_MAX][SSH_MSG_MAX];
    const char *ptrs[SSH_MSG_FIELDS_MAX];
    for (size_t i = 0; i < m.n_fields; i++) {
        if (ssh_msg_field(&m, i, fields[i], sizeof(fields[i])) < 0)
            abort();
        ptrs[i] = fields[i];
    }
    uint8_t out[SSH_MSG_MAX];
    int n = ssh_msg_encode(m.type, ptrs, m.n_fields, out, sizeof(out));
    if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
