#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <libfyaml.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/log.h"
#include "daemon/daemon.h"

bool berthd_flags_set[SET_MAX];

static void usage(FILE *f)
{
    fputs("Usage: berthd [--dev] [--config FILE] [--state-dir DIR] [--run-dir DIR]\n"
          "              [--base-domain DOMAIN] [--http ADDR:PORT]... [--https ADDR:PORT]...\n"
          "              [--ssh ADDR:PORT|off]... [--api-socket PATH] [--log-level LEVEL]\n"
          "              [--nat-bridge NAME] [--nat-ipv4 CIDR|off] [--nat-ipv6 CIDR|off]\n"
          "              [--nat-allow PROTO/PORT]...\n"
          "\n"
          "The berth daemon: hosts many sites, each in its own sandbox, behind one front.\n"
          "\n"
          "  --dev                 development mode: ports 8080/8443/2222 on loopback, base\n"
          "                        domain localhost, an admin account and a demo site\n"
          "  --config FILE         configuration file (default " BERTHD_DEFAULT_CONFIG ")\n"
          "  --state-dir DIR       sites and the store (default /var/lib/berth)\n"
          "  --run-dir DIR         sockets and pid file (default /run/berth)\n"
          "  --base-domain DOMAIN  site NAME answers at NAME.DOMAIN\n"
          "  --http ADDR:PORT      HTTP listener, repeatable (default [::]:80 and 0.0.0.0:80)\n"
          "  --https ADDR:PORT     HTTPS listener, repeatable (certificates from berth's local CA\n"
          "                        in STATE-DIR/tls; default [::]:443 and 0.0.0.0:443 when no\n"
          "                        --http/--https is given; --dev: 127.0.0.1:8443 and [::1]:8443)\n"
          "  --ssh ADDR:PORT|off   SFTP listener, repeatable: one port for every site, the login\n"
          "                        name is the site's (default [::]:2222 and 0.0.0.0:2222;\n"
          "                        --dev: 127.0.0.1:2222); the host key is STATE-DIR/\n"
          "                        ssh_host_ed25519_key; off: no SFTP\n"
          "  --api-socket PATH     API socket (default RUN-DIR/api.sock)\n"
          "  --log-level LEVEL     error, warning, notice, info or debug (default info)\n"
          "  --nat-bridge NAME     bridge of network nat sites (default berth0)\n"
          "  --nat-ipv4 CIDR|off   their IPv4 subnet (default 10.88.0.0/16)\n"
          "  --nat-ipv6 CIDR|off   their IPv6 subnet (default fd8b:e27a:1b5e::/64)\n"
          "  --nat-allow PROTO/PORT  a host service they may reach on the bridge, e.g.\n"
          "                        udp/53; repeatable (default: none)\n"
          "  --version             print the version\n", f);
}

static int add_listener(char **list, size_t *n, const char *v)
{
    if (*n >= BERTHD_MAX_LISTENERS) {
        fprintf(stderr, "berthd: at most %d listeners of one kind\n", BERTHD_MAX_LISTENERS);
        return -EINVAL;
    }
    list[(*n)++] = xstrdup(v);
    return 0;
}

static void set_string(char **field, const char *v)
{
    free(*field);
    *field = xstrdup(v);
}

static int add_nat_allow(struct berthd_config *cfg, const char *v)
{
    if (cfg->n_nat_allow >= BERTHD_MAX_NAT_ALLOW)
        return -EINVAL;
    cfg->nat_allow[cfg->n_nat_allow++] = xstrdup(v);
    return 0;
}

int berthd_config_parse_args(struct berthd_config *cfg, int argc, char **argv)
{
    enum { OPT_DEV = 256, OPT_CONFIG, OPT_STATE, OPT_RUN, OPT_BASE, OPT_HTTP, OPT_HTTPS, OPT_SSH, OPT_API,
           OPT_LOG, OPT_VERSION, OPT_HELP, OPT_NAT_BRIDGE, OPT_NAT_IPV4, OPT_NAT_IPV6, OPT_NAT_ALLOW };
    static const struct option opts[] = {
        { "dev", no_argument, NULL, OPT_DEV },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "state-dir", required_argument, NULL, OPT_STATE },
        { "run-dir", required_argument, NULL, OPT_RUN },
        { "base-domain", required_argument, NULL, OPT_BASE },
        { "http", required_argument, NULL, OPT_HTTP },
        { "https", required_argument, NULL, OPT_HTTPS },
        { "ssh", required_argument, NULL, OPT_SSH },
        { "api-socket", required_argument, NULL, OPT_API },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "nat-bridge", required_argument, NULL, OPT_NAT_BRIDGE },
        { "nat-ipv4", required_argument, NULL, OPT_NAT_IPV4 },
        { "nat-ipv6", required_argument, NULL, OPT_NAT_IPV6 },
        { "nat-allow", required_argument, NULL, OPT_NAT_ALLOW },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, OPT_HELP },
        { 0 },
    };
    cfg->log_level = -1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DEV: cfg->dev = true; break;
        case OPT_CONFIG: set_string(&cfg->config_path, optarg); break;
        case OPT_STATE: set_string(&cfg->state_dir, optarg); berthd_flags_set[SET_STATE_DIR] = true; break;
        case OPT_RUN: set_string(&cfg->run_dir, optarg); berthd_flags_set[SET_RUN_DIR] = true; break;
        case OPT_BASE: set_string(&cfg->base_domain, optarg); berthd_flags_set[SET_BASE_DOMAIN] = true; break;
        case OPT_API: set_string(&cfg->api_socket, optarg); berthd_flags_set[SET_API_SOCKET] = true; break;
        case OPT_SSH:
            if (add_listener(cfg->ssh, &cfg->n_ssh, optarg) < 0)
                return -EINVAL;
            berthd_flags_set[SET_SSH] = true;
            break;
        case OPT_NAT_BRIDGE: set_string(&cfg->nat_bridge, optarg); berthd_flags_set[SET_NAT_BRIDGE] = true; break;
        case OPT_NAT_IPV4: set_string(&cfg->nat_ipv4, optarg); berthd_flags_set[SET_NAT_IPV4] = true; break;
        case OPT_NAT_IPV6: set_string(&cfg->nat_ipv6, optarg); berthd_flags_set[SET_NAT_IPV6] = true; break;
        case OPT_NAT_ALLOW:
            if (add_nat_allow(cfg, optarg) < 0) {
                fprintf(stderr, "berthd: at most %d --nat-allow entries\n", BERTHD_MAX_NAT_ALLOW);
                return -EINVAL;
            }
            berthd_flags_set[SET_NAT_ALLOW] = true;
            break;
        case OPT_HTTP:
            if (add_listener(cfg->http, &cfg->n_http, optarg) < 0)
                return -EINVAL;
            berthd_flags_set[SET_HTTP] = true;
            break;
        case OPT_HTTPS:
            if (add_listener(cfg->https, &cfg->n_https, optarg) < 0)
                return -EINVAL;
            berthd_flags_set[SET_HTTPS] = true;
            break;
        case OPT_LOG:
            cfg->log_level = log_level_from_string(optarg);
            if (cfg->log_level < 0) {
                fprintf(stderr, "berthd: invalid log level \"%s\": use error, warning, notice, info or debug\n", optarg);
                return -EINVAL;
            }
            berthd_flags_set[SET_LOG_LEVEL] = true;
            break;
        case OPT_VERSION:
            printf("berthd %s\n", BERTH_VERSION);
            return 1;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case ':':
            fprintf(stderr, "berthd: option %s needs a value\n", argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(stderr, "berthd: unknown option %s (see berthd --help)\n", argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "berthd: unexpected argument \"%s\" (see berthd --help)\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* ---- YAML ---- */

static const char *scalar(struct fy_node *n)
{
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

static int yaml_listeners(struct fy_node *v, char **list, size_t *count, const char *key, char *err, size_t n)
{
    if (fy_node_is_scalar(v))
        return add_listener(list, count, scalar(v)) < 0 ? (snprintf(err, n, "too many %s listeners", key), -EINVAL) : 0;
    if (!fy_node_is_sequence(v)) {
        snprintf(err, n, "%s must be an address or a list of addresses", key);
        return -EINVAL;
    }
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v, &iter))) {
        const char *s = scalar(item);
        if (!s) {
            snprintf(err, n, "%s must be a list of addresses", key);
            return -EINVAL;
        }
        if (add_listener(list, count, s) < 0) {
            snprintf(err, n, "too many %s listeners", key);
            return -EINVAL;
        }
    }
    return 0;
}

/* user_site_limits: {memory: 1G, cpu: 1, pids: 512, sites: 10}, each a finite, non-zero
 * ceiling (sites has none unless given). */
static int yaml_user_site_limits(struct berthd_config *cfg, struct fy_node *v, const char *path, char *err,
                                 size_t n)
{
    if (!fy_node_is_mapping(v)) {
        snprintf(err, n, "config file %s: user_site_limits must be a mapping such as {memory: 1G, cpu: 1, pids: 512}",
                 path);
        return -EINVAL;
    }
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(v, &iter))) {
        const char *key = scalar(fy_node_pair_key(pair)), *s = scalar(fy_node_pair_value(pair));
        uint64_t num = 0;
        uint32_t millis = 0;
        if (key && streq(key, "memory") && s && parse_size(s, &num) == 0 && num >= (16ULL << 20)) {
            cfg->user_max_memory = num;
        } else if (key && streq(key, "cpu") && s && parse_cpu(s, &millis) == 0 && millis > 0) {
            cfg->user_max_cpu_millis = millis;
        } else if (key && streq(key, "pids") && s && parse_uint(s, 8, 4194304, &num) == 0) {
            cfg->user_max_pids = (uint32_t)num;
        } else if (key && streq(key, "sites") && s && parse_uint(s, 1, 1000000, &num) == 0) {
            cfg->user_max_sites = (uint32_t)num;
        } else {
            snprintf(err, n, "config file %s: user_site_limits.%s must be %s", path, key ? key : "?",
                     key && streq(key, "memory") ? "a size of at least 16M, such as 1G"
                     : key && streq(key, "cpu") ? "a number of CPUs above 0, such as 1 or 0.5"
                     : key && streq(key, "pids") ? "a number of processes from 8 up"
                     : key && streq(key, "sites") ? "a number of sites from 1 up"
                     : "one of memory, cpu, pids and sites");
            return -EINVAL;
        }
    }
    return 0;
}

/* acme: {directory: https://..., email: ops@example.org, ca_file: /path/ca.pem} */
static int yaml_acme(struct berthd_config *cfg, struct fy_node *v, const char *path, char *err, size_t n)
{
    if (!fy_node_is_mapping(v)) {
        snprintf(err, n, "config file %s: acme must be a mapping such as "
                         "{directory: https://acme-v02.api.letsencrypt.org/directory, email: you@example.org}", path);
        return -EINVAL;
    }
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(v, &iter))) {
        const char *key = scalar(fy_node_pair_key(pair)), *s = scalar(fy_node_pair_value(pair));
        if (key && s && streq(key, "directory") && strncmp(s, "https://", 8) == 0 && strlen(s) < 2048 &&
            !strpbrk(s, " \t\r\n")) {
            set_string(&cfg->acme_directory, s);
        } else if (key && s && streq(key, "email") && strchr(s, '@') && strlen(s) < 256 && !strpbrk(s, " \t\r\n,")) {
            set_string(&cfg->acme_email, s);
        } else if (key && s && streq(key, "ca_file") && s[0] == '/') {
            set_string(&cfg->acme_ca_file, s);
        } else {
            snprintf(err, n, "config file %s: acme.%s must be %s", path, key ? key : "?",
                     key && streq(key, "directory") ? "the https:// URL of the CA's ACME directory"
                     : key && streq(key, "email") ? "an email address"
                     : key && streq(key, "ca_file") ? "an absolute path to a PEM file"
                     : "one of directory, email and ca_file");
            return -EINVAL;
        }
    }
    if (!cfg->acme_directory) {
        snprintf(err, n, "config file %s: acme needs a directory (the CA's ACME directory URL)", path);
        return -EINVAL;
    }
    return 0;
}

int berthd_config_load_file(struct berthd_config *cfg, bool *flags_set, char *err, size_t n)
{
    const char *path = cfg->config_path ?: BERTHD_DEFAULT_CONFIG;
    if (access(path, F_OK) < 0) {
        if (!cfg->config_path)
            return 0;
        snprintf(err, n, "cannot read config file %s: %s", path, strerror(errno));
        return -errno;
    }
    struct fy_parse_cfg pcfg = { .flags = FYPCF_QUIET };
    struct fy_document *doc = fy_document_build_from_file(&pcfg, path);
    if (!doc) {
        snprintf(err, n, "config file %s is not valid YAML", path);
        return -EINVAL;
    }
    int r = 0;
    struct fy_node *root = fy_document_root(doc);
    if (!root) {
        fy_document_destroy(doc);
        return 0;   /* an empty file */
    }
    if (!fy_node_is_mapping(root)) {
        snprintf(err, n, "config file %s: the top level must be a mapping of settings", path);
        fy_document_destroy(doc);
        return -EINVAL;
    }
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (r == 0 && (pair = fy_node_mapping_iterate(root, &iter))) {
        const char *key = scalar(fy_node_pair_key(pair));
        struct fy_node *v = fy_node_pair_value(pair);
        const char *s = scalar(v);
        uint64_t num;
        if (!key) {
            snprintf(err, n, "config file %s: keys must be plain words", path);
            r = -EINVAL;
        } else if (streq(key, "state_dir") || streq(key, "run_dir") || streq(key, "base_domain") ||
                   streq(key, "api_socket")) {
            int which = streq(key, "state_dir") ? SET_STATE_DIR : streq(key, "run_dir") ? SET_RUN_DIR
                      : streq(key, "base_domain") ? SET_BASE_DOMAIN : SET_API_SOCKET;
            char **field = which == SET_STATE_DIR ? &cfg->state_dir : which == SET_RUN_DIR ? &cfg->run_dir
                         : which == SET_BASE_DOMAIN ? &cfg->base_domain : &cfg->api_socket;
            if (!s || !*s) {
                snprintf(err, n, "config file %s: %s must be a non-empty string", path, key);
                r = -EINVAL;
            } else if (!flags_set[which]) {
                set_string(field, s);
            }
        } else if (streq(key, "nat_bridge") || streq(key, "nat_ipv4") || streq(key, "nat_ipv6")) {
            int which = streq(key, "nat_bridge") ? SET_NAT_BRIDGE : streq(key, "nat_ipv4") ? SET_NAT_IPV4 : SET_NAT_IPV6;
            char **field = which == SET_NAT_BRIDGE ? &cfg->nat_bridge : which == SET_NAT_IPV4 ? &cfg->nat_ipv4
                         : &cfg->nat_ipv6;
            if (!s || !*s) {
                snprintf(err, n, "config file %s: %s must be a non-empty string", path, key);
                r = -EINVAL;
            } else if (!flags_set[which]) {
                set_string(field, s);
            }
        } else if (streq(key, "nat_allow")) {
            void *it = NULL;
            struct fy_node *item;
            if (!fy_node_is_sequence(v)) {
                snprintf(err, n, "config file %s: nat_allow must be a list such as [udp/53, tcp/53]", path);
                r = -EINVAL;
            }
            while (r == 0 && (item = fy_node_sequence_iterate(v, &it))) {
                const char *e = scalar(item);
                if (!e || (!flags_set[SET_NAT_ALLOW] && add_nat_allow(cfg, e) < 0)) {
                    snprintf(err, n, "config file %s: nat_allow must be a list of at most %d entries such as udp/53",
                             path, BERTHD_MAX_NAT_ALLOW);
                    r = -EINVAL;
                }
            }
        } else if (streq(key, "ssh")) {
            if (!flags_set[SET_SSH])
                r = yaml_listeners(v, cfg->ssh, &cfg->n_ssh, key, err, n);
        } else if (streq(key, "http") || streq(key, "https")) {
            bool https = streq(key, "https");
            if (!flags_set[https ? SET_HTTPS : SET_HTTP])
                r = yaml_listeners(v, https ? cfg->https : cfg->http, https ? &cfg->n_https : &cfg->n_http, key, err, n);
        } else if (streq(key, "log_level")) {
            int level = s ? log_level_from_string(s) : -EINVAL;
            if (level < 0) {
                snprintf(err, n, "config file %s: log_level must be error, warning, notice, info or debug", path);
                r = -EINVAL;
            } else if (!flags_set[SET_LOG_LEVEL]) {
                cfg->log_level = level;
            }
        } else if (streq(key, "site_uid_range")) {
            unsigned long long a, b;
            char extra;
            if (!s || sscanf(s, "%llu-%llu%c", &a, &b, &extra) != 2 || a < 1000 || b < a || b > 0xfffffffeULL) {
                snprintf(err, n, "config file %s: site_uid_range must look like 200000-299999", path);
                r = -EINVAL;
            } else {
                cfg->uid_first = (uint32_t)a;
                cfg->uid_last = (uint32_t)b;
            }
        } else if (streq(key, "front_cpu_affinity")) {
            if (s && (streq(s, "true") || streq(s, "false"))) {
                cfg->no_cpu_affinity = streq(s, "false");
            } else {
                snprintf(err, n, "config file %s: front_cpu_affinity must be true or false", path);
                r = -EINVAL;
            }
        } else if (streq(key, "front_http2")) {
            if (s && (streq(s, "true") || streq(s, "false"))) {
                cfg->no_http2 = streq(s, "false");
            } else {
                snprintf(err, n, "config file %s: front_http2 must be true or false", path);
                r = -EINVAL;
            }
        } else if (streq(key, "site_max_requests")) {
            if (!s || parse_uint(s, 0, 1000000, &num) < 0) {
                snprintf(err, n, "config file %s: site_max_requests must be a number from 0 (no limit) to 1000000",
                         path);
                r = -EINVAL;
            } else {
                cfg->site_max_requests = (uint32_t)num;
                cfg->site_max_requests_set = true;
            }
        } else if (streq(key, "user_site_limits")) {
            r = yaml_user_site_limits(cfg, v, path, err, n);
        } else if (streq(key, "acme")) {
            r = yaml_acme(cfg, v, path, err, n);
        } else if (streq(key, "front_uid") || streq(key, "front_gid") || streq(key, "workers")) {
            if (!s || parse_uint(s, streq(key, "workers") ? 1 : 1, streq(key, "workers") ? 64 : 0xfffffffeULL, &num) < 0) {
                snprintf(err, n, "config file %s: %s must be a positive number", path, key);
                r = -EINVAL;
            } else if (streq(key, "workers")) {
                cfg->workers = (unsigned)num;
            } else if (streq(key, "front_uid")) {
                cfg->front_uid = (uint32_t)num;
            } else {
                cfg->front_gid = (uint32_t)num;
            }
        } else {
            snprintf(err, n, "config file %s: unknown setting \"%s\"", path, key);
            r = -EINVAL;
        }
    }
    fy_document_destroy(doc);
    return r;
}

int berthd_config_finish(struct berthd_config *cfg)
{
    if (!cfg->state_dir)
        cfg->state_dir = xstrdup("/var/lib/berth");
    if (!cfg->run_dir)
        cfg->run_dir = xstrdup("/run/berth");
    if (!cfg->base_domain)
        cfg->base_domain = xstrdup("localhost");
    if (!cfg->api_socket) {
        char *p;
        if (asprintf(&p, "%s/api.sock", cfg->run_dir) < 0)
            return -ENOMEM;
        cfg->api_socket = p;
    }
    bool no_listeners = cfg->n_http == 0 && cfg->n_https == 0;
    if (cfg->n_http == 0) {
        if (cfg->dev) {
            add_listener(cfg->http, &cfg->n_http, "127.0.0.1:8080");
            add_listener(cfg->http, &cfg->n_http, "[::1]:8080");
        } else {
            add_listener(cfg->http, &cfg->n_http, "[::]:80");
            add_listener(cfg->http, &cfg->n_http, "0.0.0.0:80");
        }
    }
    /* HTTPS on 443 (--dev: 8443) unless listeners were given: a berthd told where
     * to serve HTTP serves HTTPS only where it is told to as well. */
    if (cfg->n_https == 0 && cfg->dev) {
        add_listener(cfg->https, &cfg->n_https, "127.0.0.1:8443");
        add_listener(cfg->https, &cfg->n_https, "[::1]:8443");
    } else if (no_listeners) {
        add_listener(cfg->https, &cfg->n_https, "[::]:443");
        add_listener(cfg->https, &cfg->n_https, "0.0.0.0:443");
    }
    if (cfg->n_ssh == 0) {
        cfg->ssh_default = true;
        if (cfg->dev) {
            add_listener(cfg->ssh, &cfg->n_ssh, "127.0.0.1:2222");
        } else {
            add_listener(cfg->ssh, &cfg->n_ssh, "[::]:2222");
            add_listener(cfg->ssh, &cfg->n_ssh, "0.0.0.0:2222");
        }
    } else if (cfg->n_ssh == 1 && streq(cfg->ssh[0], "off")) {
        free(cfg->ssh[0]);
        cfg->ssh[0] = NULL;
        cfg->n_ssh = 0;
    }
    if (cfg->log_level < 0)
        cfg->log_level = LOG_INFO;
    if (cfg->uid_first == 0) {
        cfg->uid_first = 200000;
        cfg->uid_last = 299999;
    }
    if (cfg->user_max_memory == 0)
        cfg->user_max_memory = 1ULL << 30;
    if (cfg->user_max_cpu_millis == 0)
        cfg->user_max_cpu_millis = 1000;
    if (cfg->user_max_pids == 0)
        cfg->user_max_pids = 512;
    if (!cfg->nat_bridge)
        cfg->nat_bridge = xstrdup("berth0");
    if (!cfg->nat_ipv4)
        cfg->nat_ipv4 = xstrdup("10.88.0.0/16");
    if (!cfg->nat_ipv6)
        cfg->nat_ipv6 = xstrdup("fd8b:e27a:1b5e::/64");
    if (cfg->front_uid == 0)
        cfg->front_uid = 199999;
    if (cfg->front_gid == 0)
        cfg->front_gid = cfg->front_uid;
    return 0;
}

void berthd_config_done(struct berthd_config *cfg)
{
    free(cfg->config_path);
    free(cfg->state_dir);
    free(cfg->run_dir);
    free(cfg->base_domain);
    free(cfg->api_socket);
    for (size_t i = 0; i < cfg->n_ssh; i++)
        free(cfg->ssh[i]);
    free(cfg->nat_bridge);
    free(cfg->nat_ipv4);
    free(cfg->nat_ipv6);
    free(cfg->acme_directory);
    free(cfg->acme_email);
    free(cfg->acme_ca_file);
    for (size_t i = 0; i < cfg->n_nat_allow; i++)
        free(cfg->nat_allow[i]);
    for (size_t i = 0; i < cfg->n_http; i++)
        free(cfg->http[i]);
    for (size_t i = 0; i < cfg->n_https; i++)
        free(cfg->https[i]);
}

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_storage storage;
};

/* Parses "IP:PORT" or "[IPv6]:PORT". */
static int parse_address(const char *spec, union sockaddr_any *addr, socklen_t *ret_len)
{
    char host[64];
    const char *port_str;
    uint64_t port;

    *addr = (union sockaddr_any){ 0 };
    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (!close_br || close_br[1] != ':' || (size_t)(close_br - spec - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec + 1, (size_t)(close_br - spec - 1));
        host[close_br - spec - 1] = 0;
        port_str = close_br + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host) || memchr(spec, ':', (size_t)(colon - spec)))
            return -EINVAL;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        port_str = colon + 1;
    }
    if (parse_uint(port_str, 0, 65535, &port) < 0)
        return -EINVAL;
    if (inet_pton(AF_INET, host, &addr->in4.sin_addr) == 1) {
        addr->in4.sin_family = AF_INET;
        addr->in4.sin_port = htons((uint16_t)port);
        *ret_len = sizeof(addr->in4);
    } else if (inet_pton(AF_INET6, host, &addr->in6.sin6_addr) == 1) {
        addr->in6.sin6_family = AF_INET6;
        addr->in6.sin6_port = htons((uint16_t)port);
        *ret_len = sizeof(addr->in6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static void describe(struct berthd_listener *ret, const char *kind, const char *spec, int fd)
{
    union sockaddr_any addr;
    socklen_t len = sizeof(addr);
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    getsockname(fd, &addr.sa, &len);
    if (addr.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &addr.in4.sin_addr, ip, sizeof(ip));
        port = ntohs(addr.in4.sin_port);
        snprintf(ret->address, sizeof(ret->address), "%s:%u", ip, port);
    } else {
        inet_ntop(AF_INET6, &addr.in6.sin6_addr, ip, sizeof(ip));
        port = ntohs(addr.in6.sin6_port);
        snprintf(ret->address, sizeof(ret->address), "[%s]:%u", ip, port);
    }
    ret->kind = kind;
    snprintf(ret->requested, sizeof(ret->requested), "%s", spec);
    ret->fd = fd;
}

size_t berthd_listen_fds_take(int *fds, size_t max)
{
    const char *pid = getenv("LISTEN_PID"), *count = getenv("LISTEN_FDS");
    uint64_t p, n;
    size_t taken = 0;

    if (!pid || !count || parse_uint(pid, 1, INT32_MAX, &p) < 0 || (pid_t)p != getpid() ||
        parse_uint(count, 0, 1024, &n) < 0)
        return 0;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (uint64_t i = 0; i < n; i++) {
        int fd = 3 + (int)i;
        /* Inherited fds lack O_CLOEXEC by the protocol's nature; ours must have it. */
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            continue;
        if (taken < max)
            fds[taken++] = fd;
        else
            close(fd);
    }
    return taken;
}

static bool same_address(int fd, const union sockaddr_any *want, socklen_t want_len)
{
    union sockaddr_any have;
    socklen_t len = sizeof(have);
    int listening = 0;
    socklen_t optlen = sizeof(listening);
    if (getsockname(fd, &have.sa, &len) < 0 || len != want_len || have.sa.sa_family != want->sa.sa_family ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0 || !listening)
        return false;
    if (have.sa.sa_family == AF_INET)
        return have.in4.sin_port == want->in4.sin_port &&
               have.in4.sin_addr.s_addr == want->in4.sin_addr.s_addr;
    return have.in6.sin6_port == want->in6.sin6_port &&
           memcmp(&have.in6.sin6_addr, &want->in6.sin6_addr, sizeof(struct in6_addr)) == 0;
}

int berthd_listener_open(const char *kind, const char *spec, int *inherited, size_t n_inherited,
                         struct berthd_listener *ret, char *err, size_t n)
{
    union sockaddr_any addr;
    socklen_t len;
    if (parse_address(spec, &addr, &len) < 0) {
        snprintf(err, n, "invalid %s address \"%s\": use IP:PORT or [IPv6]:PORT, e.g. 0.0.0.0:80 or [::]:80", kind, spec);
        return -EINVAL;
    }
    for (size_t i = 0; i < n_inherited; i++) {
        if (inherited[i] >= 0 && same_address(inherited[i], &addr, len)) {
            int fd = inherited[i];
            inherited[i] = -1;
            int flags = fcntl(fd, F_GETFL);
            if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                snprintf(err, n, "cannot use the inherited socket for %s: %s", spec, strerror(errno));
                return -errno;
            }
            describe(ret, kind, spec, fd);
            return 1;
        }
    }
    return berthd_listener_bind(kind, spec, ret, err, n);
}

int berthd_listener_bind(const char *kind, const char *spec, struct berthd_listener *ret, char *err, size_t n)
{
    union sockaddr_any addr;
    socklen_t len;
    _cleanup_close_ int fd = -1;
    int one = 1;

    if (parse_address(spec, &addr, &len) < 0) {
        snprintf(err, n, "invalid %s address \"%s\": use IP:PORT or [IPv6]:PORT, e.g. 0.0.0.0:80 or [::]:80", kind, spec);
        return -EINVAL;
    }
    fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (addr.sa.sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
        snprintf(err, n, "cannot create a socket for %s: %s", spec, strerror(errno));
        return -errno;
    }
    /* SO_REUSEPORT only once bound, so that a port another program (or another
     * berthd) listens on still fails here; set before listen(), it lets the front
     * give each worker a socket of its own in the same group (src/front/spread.c). */
    if (bind(fd, &addr.sa, len) < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        listen(fd, 4096) < 0) {
        int e = errno;
        snprintf(err, n, "cannot listen on %s (%s): %s", spec, kind, strerror(e));
        return -e;
    }
    describe(ret, kind, spec, TAKE_FD(fd));
    return 0;
}
