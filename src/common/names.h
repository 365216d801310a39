/* Validation of the names users give: site names, user names, domain names
 * (with IDN → punycode, RFC 3492 / RFC 5891 basics). */
#pragma once

#include "common/util.h"

/* A site name is a DNS label: [a-z0-9-]{1,63}, not starting or ending with '-'.
 * Uppercase is refused, not folded (the name is also a directory and a user). */
bool site_name_valid(const char *name);
/* Site names the front and the panel answer on (panel, api, www): no site may take them. */
bool site_name_reserved(const char *name);
/* A user name: [a-z_][a-z0-9_.-]{0,31}, not ending with '.'. */
bool user_name_valid(const char *name);
/* Normalises a host name a user typed: lowercases ASCII, strips one trailing dot,
 * converts each non-ASCII label (UTF-8) to its "xn--" punycode form, and checks the
 * result: labels 1..63 of [a-z0-9-] not starting/ending with '-', total <= 253, at
 * least two labels, no all-numeric top label. Returns 0 and a malloc'd ASCII name,
 * or -EINVAL with ret_reason set to a static, human sentence saying what is wrong. */
int domain_normalize(const char *input, char **ret_ascii, const char **ret_reason);
/* Punycode-encodes one label of Unicode code points (RFC 3492), without the "xn--"
 * prefix, into out (NUL-terminated). -ERANGE if it does not fit, -EINVAL on bad input. */
int punycode_encode(const uint32_t *cps, size_t n, char *out, size_t outsize);
