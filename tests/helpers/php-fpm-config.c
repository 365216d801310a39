/* php-fpm-config: prints the php-fpm configuration berthd generates for a site
 * (php_fpm_config_write), so integration tests and benchmarks run php-fpm with
 * exactly that text.
 *
 *   php-fpm-config NAME [MAX_BODY_BYTES [SETTINGS_JSON]]
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"
#include "sites/sites.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: php-fpm-config NAME [MAX_BODY_BYTES [SETTINGS_JSON]]\n");
        return 2;
    }
    struct php_fpm_site site = {
        .name = argv[1],
        .max_body = argc > 2 ? strtoull(argv[2], NULL, 10) : 0,
        .settings_json = argc > 3 ? argv[3] : NULL,
    };
    struct buf out = BUF_INIT(1 << 20);
    struct error err = { 0 };
    int r = php_fpm_config_write(&site, &out, &err);
    if (r < 0) {
        fprintf(stderr, "php-fpm-config: %s\n", err.message);
        buf_done(&out);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    buf_done(&out);
    return 0;
}
