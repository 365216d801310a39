/* Network nat: berth's bridge with the gateway addresses, a firewall table of its
 * own, and one veth pair per sandbox. The design and its reasons are in
 * docs/internals/sandbox.md ("Networking"). */
#include "sandbox/sandbox-internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "common/fs.h"

#define MAX_ALLOW 64

struct sandbox_nat {
    char bridge[IFNAMSIZ];
    struct sandbox_subnet v4, v6;   /* the subnets; family 0 when absent */
    char *allow[MAX_ALLOW + 1];
    uint32_t uid_base;
    int bridge_ifindex;
    bool ready;
};

/* ---- pure helpers ---- */

int sandbox_subnet_parse(const char *text, struct sandbox_subnet *ret)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, text, (size_t)(slash - text));
    addr[slash - text] = 0;
    uint64_t prefix;
    struct sandbox_subnet sn = { 0 };
    if (inet_pton(AF_INET, addr, &sn.net.b) == 1) {
        if (parse_uint(slash + 1, 8, 30, &prefix) < 0)
            return -EINVAL;
        sn.family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, &sn.net.b) == 1) {
        if (parse_uint(slash + 1, 64, 120, &prefix) < 0)
            return -EINVAL;
        sn.family = AF_INET6;
    } else {
        return -EINVAL;
    }
    sn.prefix = (uint8_t)prefix;
    /* Host bits must be zero: "10.88.1.0/16" is most likely a typo. */
    size_t bytes = sn.family == AF_INET ? 4 : 16;
    for (size_t bit = sn.prefix; bit < bytes * 8; bit++)
        if (sn.net.b[bit / 8] & (0x80 >> (bit % 8)))
            return -EINVAL;
    *ret = sn;
    return 0;
}

int sandbox_subnet_host(const struct sandbox_subnet *sn, uint32_t host, struct sandbox_subnet *ret)
{
    if (!sn->family || host == 0)
        return -ERANGE;
    unsigned bits = (sn->family == AF_INET ? 32U : 128U) - sn->prefix;
    if (sn->family == AF_INET) {
        /* The all-ones host is the broadcast address. */
        if (host >= (1U << bits) - 1)
            return -ERANGE;
    } else if (bits < 32 && host >= (1U << bits)) {
        return -ERANGE;
    }
    struct sandbox_subnet r = *sn;
    size_t last = sn->family == AF_INET ? 0 : 12;   /* the low 32 bits, where host goes */
    uint32_t low;
    memcpy(&low, r.net.b + last, 4);
    low = htonl(ntohl(low) + host);
    memcpy(r.net.b + last, &low, 4);
    *ret = r;
    return 0;
}

static int allow_parse(const char *entry, char proto[4], unsigned *ret_port)
{
    uint64_t port;
    if (str_startswith(entry, "tcp/"))
        memcpy(proto, "tcp", 4);
    else if (str_startswith(entry, "udp/"))
        memcpy(proto, "udp", 4);
    else
        return -EINVAL;
    if (parse_uint(entry + 4, 1, 65535, &port) < 0)
        return -EINVAL;
    *ret_port = (unsigned)port;
    return 0;
}

static void subnet_text(const struct sandbox_subnet *sn, char out[INET6_ADDRSTRLEN])
{
    inet_ntop(sn->family, sn->net.b, out, INET6_ADDRSTRLEN);
}

int sandbox_nat_ruleset(const char *bridge, const struct sandbox_subnet *v4, const struct sandbox_subnet *v6,
                        const char *const *allow, char **ret)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    int r = 0;
    /* Declare, delete, define: one transaction that replaces the table of a
     * previous life (or makes it) without a moment where the rules are absent. */
    fprintf(f, "table inet berth-%s {}\ndelete table inet berth-%s\n", bridge, bridge);
    fprintf(f, "table inet berth-%s {\n", bridge);
    /* Sites reach no service of the host, on any of its addresses (all arrive
     * here: the destination is local), except the allowed ones. Neighbour
     * discovery must pass, or IPv6 could not even find the gateway. */
    fprintf(f, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
               "\t\tiifname \"%s\" ct state established,related accept\n"
               "\t\tiifname \"%s\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n",
            bridge, bridge);
    for (const char *const *a = allow; a && *a; a++) {
        char proto[4];
        unsigned port;
        if ((r = allow_parse(*a, proto, &port)) < 0)
            break;
        fprintf(f, "\t\tiifname \"%s\" %s dport %u accept\n", bridge, proto, port);
    }
    fprintf(f, "\t\tiifname \"%s\" reject with icmpx admin-prohibited\n\t}\n", bridge);
    /* Site to site through the gateway is refused (the bridge's port isolation
     * already stops it at layer 2); nothing from outside starts a connection in.
     * Link-local destinations are never forwarded (RFC 3927, RFC 4291): behind
     * them sits a cloud's metadata service (169.254.169.254), which would hand
     * a site, masqueraded as the host, the host's identity and credentials. */
    fprintf(f, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
               "\t\tiifname \"%s\" oifname \"%s\" reject with icmpx admin-prohibited\n"
               "\t\toifname \"%s\" ct state established,related accept\n"
               "\t\toifname \"%s\" drop\n"
               "\t\tiifname \"%s\" ip daddr 169.254.0.0/16 reject with icmpx admin-prohibited\n"
               "\t\tiifname \"%s\" ip6 daddr fe80::/10 reject with icmpx admin-prohibited\n"
               "\t\tiifname \"%s\" accept\n\t}\n",
            bridge, bridge, bridge, bridge, bridge, bridge, bridge);
    fprintf(f, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    char net[INET6_ADDRSTRLEN];
    if (v4 && v4->family) {
        subnet_text(v4, net);
        fprintf(f, "\t\toifname != \"%s\" ip saddr %s/%u masquerade\n", bridge, net, v4->prefix);
    }
    if (v6 && v6->family) {
        subnet_text(v6, net);
        fprintf(f, "\t\toifname != \"%s\" ip6 saddr %s/%u masquerade\n", bridge, net, v6->prefix);
    }
    fprintf(f, "\t}\n}\n");
    if (fclose(f) != 0 && r >= 0)
        r = -ENOMEM;
    if (r < 0) {
        free(text);
        return r;
    }
    *ret = text;
    return 0;
}

static bool nameserver_unreachable(const char *addr)
{
    /* The sandbox has its own loopback: the host's 127.0.0.53 or ::1 is not there.
     * A link-local server is on a link the sandbox is not on. */
    return str_startswith(addr, "127.") || streq(addr, "::1") || str_startswith(addr, "fe80:") ||
           str_startswith(addr, "FE80:");
}

int sandbox_nat_resolv_conf(const char *host_text, const char *gw4, const char *gw6, char **ret)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    unsigned kept = 0;
    for (const char *line = host_text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        if (n < sizeof(buf)) {
            memcpy(buf, line, n);
            buf[n] = 0;
            char word[16], addr[128];
            bool drop = false;
            if (sscanf(buf, " %15s %127s", word, addr) == 2 && streq(word, "nameserver")) {
                drop = nameserver_unreachable(addr);
                kept += !drop;
            }
            if (!drop)
                fprintf(f, "%s\n", buf);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (kept == 0) {
        if (gw4 && *gw4)
            fprintf(f, "nameserver %s\n", gw4);
        if (gw6 && *gw6)
            fprintf(f, "nameserver %s\n", gw6);
    }
    if (fclose(f) != 0) {
        free(text);
        return -ENOMEM;
    }
    *ret = text;
    return 0;
}

/* ---- the handle ---- */

/* The name goes into the nft ruleset as text: only letters, digits, '-', '_' and
 * '.' (a subset of what the kernel allows in an interface name), so it can never
 * end a quoted string or start a new statement. */
static bool bridge_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= IFNAMSIZ || streq(name, ".") || streq(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

int sandbox_nat_new(const struct sandbox_nat_config *cfg, struct sandbox_nat **ret)
{
    if (!bridge_name_valid(cfg->bridge))
        return -EINVAL;
    struct sandbox_nat *nat = calloc(1, sizeof(*nat));
    if (!nat)
        return -ENOMEM;
    int r = 0;
    memcpy(nat->bridge, cfg->bridge, strlen(cfg->bridge) + 1);
    nat->uid_base = cfg->uid_base;
    nat->bridge_ifindex = -1;
    if (cfg->ipv4 && *cfg->ipv4 && ((r = sandbox_subnet_parse(cfg->ipv4, &nat->v4)) < 0 || nat->v4.family != AF_INET))
        r = -EINVAL;
    if (r >= 0 && cfg->ipv6 && *cfg->ipv6 &&
        ((r = sandbox_subnet_parse(cfg->ipv6, &nat->v6)) < 0 || nat->v6.family != AF_INET6))
        r = -EINVAL;
    if (r >= 0 && !nat->v4.family && !nat->v6.family)
        r = -EINVAL;
    size_t n = 0;
    for (const char *const *a = cfg->allow; r >= 0 && a && *a; a++) {
        char proto[4];
        unsigned port;
        if (n == MAX_ALLOW || allow_parse(*a, proto, &port) < 0)
            r = -EINVAL;
        else if (!(nat->allow[n++] = strdup(*a)))
            r = -ENOMEM;
    }
    if (r < 0) {
        sandbox_nat_free(nat);
        return r;
    }
    *ret = nat;
    return 0;
}

void sandbox_nat_free(struct sandbox_nat *nat)
{
    if (!nat)
        return;
    for (size_t i = 0; nat->allow[i]; i++)
        free(nat->allow[i]);
    free(nat);
}

bool sandbox_nat_leftover(const struct sandbox_nat *nat)
{
    /* The bridge is made before the table and deleted after it, so it is there
     * whenever a previous life left either. */
    return if_nametoindex(nat->bridge) != 0;
}

static int gateway(const struct sandbox_subnet *sn, struct sandbox_subnet *ret)
{
    return sandbox_subnet_host(sn, 1, ret);
}

static int write_sysctl(const char *path, const char *value)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, value, strlen(value));
    if (n < 0)
        return -errno;
    return n == (ssize_t)strlen(value) ? 0 : -EIO;
}

/* Runs `nft -f -` with text on its stdin. nft's own messages go to our stderr
 * (berthd's log), which is where an operator looks for why a ruleset failed. */
static int nft_load(const char *text)
{
    static const char *const paths[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft" };
    const char *nft = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(paths) && !nft; i++)
        if (access(paths[i], X_OK) == 0)
            nft = paths[i];
    if (!nft)
        return -ENOENT;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(p[0]);
        close(p[1]);
        return r;
    }
    if (pid == 0) {
        /* berthd blocks the signals it reads from a signalfd; nft starts clean. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(p[0], 0) < 0)
            _exit(127);
        execl(nft, "nft", "-f", "-", (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    size_t len = strlen(text), off = 0;
    int r = 0;
    while (off < len) {
        ssize_t n = write(p[1], text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        off += (size_t)n;
    }
    close(p[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (r < 0)
        return r;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPROTO;
}

static int link_del(int fd, const char *name)
{
    struct sandbox_nlmsg m;
    sandbox_nl_link_del(&m, name);
    int r = sandbox_netlink_call(fd, &m);
    return r == -ENODEV ? 0 : r;
}

int sandbox_nat_setup(struct sandbox_nat *nat)
{
    if (nat->ready)
        return 0;
    _cleanup_close_ int fd = sandbox_netlink_open();
    if (fd < 0)
        return fd;
    struct sandbox_nlmsg m;
    int r;
    /* A bridge of a previous life goes: made afresh, it carries exactly the
     * addresses of this configuration, and no port a dead sandbox left. */
    if ((r = link_del(fd, nat->bridge)) < 0)
        return r;
    sandbox_nl_bridge_new(&m, nat->bridge);
    /* A fixed MAC: a bridge without one takes its lowest port's (br_stp_recalculate_bridge_id),
     * so every sandbox start or stop could change the gateway's MAC under the
     * others' ARP caches. Locally administered, derived from the name. */
    uint32_t h = 2166136261u;
    for (const char *p = nat->bridge; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    uint8_t mac[6] = { 0x02, 0xbe, (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h };
    sandbox_nlmsg_put(&m, IFLA_ADDRESS, mac, sizeof(mac));
    if ((r = sandbox_netlink_call(fd, &m)) < 0)
        return r;
    sandbox_nl_link_set(&m, nat->bridge, false);
    if ((r = sandbox_netlink_call(fd, &m)) < 0)
        return r;
    int ifindex = (int)if_nametoindex(nat->bridge);
    if (ifindex <= 0)
        return -ENODEV;
    struct sandbox_subnet gw;
    if (nat->v4.family) {
        if ((r = gateway(&nat->v4, &gw)) < 0)
            return r;
        sandbox_nl_addr_new(&m, AF_INET, ifindex, &gw.net.b, nat->v4.prefix);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
        if ((r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")) < 0)
            return r;
    }
    if (nat->v6.family) {
        if ((r = gateway(&nat->v6, &gw)) < 0)
            return r;
        sandbox_nl_addr_new(&m, AF_INET6, ifindex, &gw.net.b, nat->v6.prefix);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
        if ((r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")) < 0)
            return r;
    }
    _cleanup_free_ char *rules = NULL;
    if ((r = sandbox_nat_ruleset(nat->bridge, &nat->v4, &nat->v6, (const char *const *)nat->allow, &rules)) < 0)
        return r;
    if ((r = nft_load(rules)) < 0)
        return r;
    nat->bridge_ifindex = ifindex;
    nat->ready = true;
    return 0;
}

int sandbox_nat_teardown(struct sandbox_nat *nat)
{
    char text[128];
    snprintf(text, sizeof(text), "table inet berth-%s {}\ndelete table inet berth-%s\n", nat->bridge, nat->bridge);
    int r = nft_load(text);
    if (r == -ENOENT)
        r = 0;   /* no nft: no table was ever loaded */
    _cleanup_close_ int fd = sandbox_netlink_open();
    if (fd < 0)
        return fd;
    int k = link_del(fd, nat->bridge);
    nat->ready = false;
    nat->bridge_ifindex = -1;
    return r < 0 ? r : k;
}

void sandbox_nat_host_ifname(uid_t uid, char ret[16])
{
    snprintf(ret, 16, "bv%u", (unsigned)uid);
}

int sandbox_nat_plan_prepare(const struct sandbox_nat *nat, uid_t uid, struct sandbox_nat_plan *plan)
{
    if (uid < nat->uid_base || uid - nat->uid_base > UINT32_MAX - 2)
        return -ERANGE;
    uint32_t host = uid - nat->uid_base + 2;
    struct sandbox_nat_plan p = { 0 };
    sandbox_nat_host_ifname(uid, p.host_ifname);
    struct sandbox_subnet gw;
    int r;
    if (nat->v4.family) {
        if ((r = sandbox_subnet_host(&nat->v4, host, &p.v4)) < 0 || (r = gateway(&nat->v4, &gw)) < 0)
            return r;
        memcpy(p.gw4, gw.net.b, 4);
    }
    if (nat->v6.family) {
        if ((r = sandbox_subnet_host(&nat->v6, host, &p.v6)) < 0 || (r = gateway(&nat->v6, &gw)) < 0)
            return r;
        memcpy(p.gw6, gw.net.b, 16);
    }
    *plan = p;
    return 0;
}

int sandbox_nat_address(const struct sandbox_nat *nat, uid_t uid, char ret_v4[46], char ret_v6[46])
{
    struct sandbox_nat_plan p;
    int r = sandbox_nat_plan_prepare(nat, uid, &p);
    if (r < 0)
        return r;
    ret_v4[0] = ret_v6[0] = 0;
    if (p.v4.family)
        subnet_text(&p.v4, ret_v4);
    if (p.v6.family)
        subnet_text(&p.v6, ret_v6);
    return 0;
}

int sandbox_nat_plan_resolv(const struct sandbox_nat *nat, const char *host_text, char **ret)
{
    char gw4[INET6_ADDRSTRLEN] = "", gw6[INET6_ADDRSTRLEN] = "";
    struct sandbox_subnet gw;
    if (nat->v4.family && gateway(&nat->v4, &gw) >= 0)
        subnet_text(&gw, gw4);
    if (nat->v6.family && gateway(&nat->v6, &gw) >= 0)
        subnet_text(&gw, gw6);
    return sandbox_nat_resolv_conf(host_text, gw4, gw6, ret);
}

int sandbox_nat_attach(const struct sandbox_nat *nat, const struct sandbox_nat_plan *plan, pid_t child_pid)
{
    if (!nat->ready)
        return -ENETDOWN;
    _cleanup_close_ int fd = sandbox_netlink_open();
    if (fd < 0)
        return fd;
    struct sandbox_nlmsg m;
    /* A veth of the same name belongs to an earlier sandbox of this site whose
     * namespace is still alive but which the caller did not know of (a new
     * sandbox of a site whose sandbox lives shares its network: join_net_pidfd):
     * its address is the one this sandbox takes, so it goes. */
    int r = link_del(fd, plan->host_ifname);
    if (r < 0)
        return r;
    sandbox_nl_veth_new(&m, plan->host_ifname, nat->bridge_ifindex, "eth0", child_pid);
    if ((r = sandbox_netlink_call(fd, &m)) < 0)
        return r;
    sandbox_nl_link_set(&m, plan->host_ifname, true);
    if ((r = sandbox_netlink_call(fd, &m)) < 0) {
        (void)link_del(fd, plan->host_ifname);
        return r;
    }
    return 0;
}

int sandbox_net_nat_configure(const struct sandbox_nat_plan *plan)
{
    _cleanup_close_ int fd = sandbox_netlink_open();
    if (fd < 0)
        return fd;
    struct sandbox_nlmsg m;
    int r;
    sandbox_nl_link_set(&m, "eth0", false);
    if ((r = sandbox_netlink_call(fd, &m)) < 0)
        return r;
    int ifindex = (int)if_nametoindex("eth0");
    if (ifindex <= 0)
        return -ENODEV;
    if (plan->v4.family) {
        sandbox_nl_addr_new(&m, AF_INET, ifindex, &plan->v4.net.b, plan->v4.prefix);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
        sandbox_nl_route_default(&m, AF_INET, ifindex, plan->gw4);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
    }
    if (plan->v6.family) {
        sandbox_nl_addr_new(&m, AF_INET6, ifindex, &plan->v6.net.b, plan->v6.prefix);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
        sandbox_nl_route_default(&m, AF_INET6, ifindex, plan->gw6);
        if ((r = sandbox_netlink_call(fd, &m)) < 0)
            return r;
    }
    return 0;
}
