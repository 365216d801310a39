/* Runs ssh_pubkey_parse on arbitrary input: a key it accepts must come back the
 * same when its own "TYPE BASE64 COMMENT" is parsed again, and a refusal must say why. */
#include <sodium.h>
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init && sodium_init() < 0)
        abort();
    init = true;
    struct ssh_pubkey k;
    char why[256] = "";
    int r = ssh_pubkey_parse((const char *)data, size, &k, why, sizeof(why));
    if (r < 0) {
        if (r != -EINVAL || !why[0])
            abort();
        return 0;
    }
    size_t len = strlen(k.type) + strlen(k.base64) + strlen(k.comment) + 3;
    char *line = malloc(len);
    snprintf(line, len, "%s %s %s", k.type, k.base64, k.comment);
    struct ssh_pubkey again;
    if (ssh_pubkey_parse(line, strlen(line), &again, why, sizeof(why)) < 0 ||
        strcmp(again.fingerprint, k.fingerprint) != 0 || again.bits != k.bits)
        abort();
    ssh_pubkey_done(&again);
    ssh_pubkey_done(&k);
    free(line);
    return 0;
}
