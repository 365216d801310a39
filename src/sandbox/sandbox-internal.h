/* Internal interface between the files of the sandbox component (and its unit tests).
 * Not for other components: they include only sandbox/sandbox.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <linux/limits.h>
#include <sys/types.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

/* ---- sandbox-cgroup.c: pure helpers (unit-tested) ---- */

/* Finds, in the text of /proc/self/cgroup, the path of the hierarchy whose
 * controller list holds `controller` ("memory" matches "4:memory:/x" and
 * "2:cpu,memory:/x"); controller "" selects the v2 line "0::/path". Returns the path
 * (malloc'd) in ret_path and the line's controller list (malloc'd, "" for v2) in
 * ret_list (may be NULL). -ENOENT if no line matches, -EINVAL on a malformed line. */
int sandbox_cgroup_self_path(const char *text, const char *controller, char **ret_path,
                             char **ret_list);
/* Looks `key` up in "key value\n" text (memory.events, cpu.stat, memory.oom_control).
 * -ENOENT if absent, -EINVAL if the value is not a number. */
int sandbox_cgroup_keyed_get(const char *text, const char *key, uint64_t *ret);
/* Formats a limit for the kernel: 0 means unlimited, written "max" (v2, and pids
 * in v1) or "-1" (v1 memory and cpu quota). -ENOBUFS if n is too small. */
int sandbox_cgroup_format_limit(uint64_t value, bool v1_minus_one, char *out, size_t n);
/* Formats v2 cpu.max for a share in thousandths of a CPU: "50000 100000" for 500,
 * "max 100000" for 0. The quota is at least 1000us (the kernel's minimum). */
int sandbox_cgroup_format_cpu_max(uint32_t millis, char *out, size_t n);
/* The v1 cpu.cfs_quota_us for a period of 100000us: -1 for 0, at least 1000. */
int64_t sandbox_cgroup_cfs_quota(uint32_t millis);
/* True if name is a usable cgroup directory name for a site (a DNS label, also
 * rejecting "." ".." and names the kernel reserves like "cgroup.x"). */
bool sandbox_cgroup_name_valid(const char *name);

/* ---- sandbox-cgroup.c: used by sandbox-spawn.c ---- */

/* An O_PATH|O_DIRECTORY fd of the cgroup in the v2 (or hybrid unified) hierarchy for
 * clone3(CLONE_INTO_CGROUP), or -1 when there is none. Borrowed. */
int sandbox_cgroup_v2_fd(const struct sandbox_cgroup *cg);
/* Attaches pid to the hierarchies that CLONE_INTO_CGROUP does not cover (every v1
 * one; all when skip_v2 is false). */
int sandbox_cgroup_attach_v1(struct sandbox_cgroup *cg, pid_t pid, bool skip_v2);

/* ---- sandbox-mount.c ---- */

/* Everything the child needs to build its root, prepared by the parent before
 * clone (reading host files, formatting /etc) so the child only mounts and writes. */
struct sandbox_root_plan {
    const char *site_dir;          /* borrowed */
    const struct sandbox_bind *ro_binds;   /* borrowed */
    size_t n_ro_binds;
    char *passwd;                  /* owned, generated */
    char *group;
    char *hosts;
    char *hostname_file;
    char *resolv_conf;             /* copy of the host's, or NULL (network none) */
    char tmp_opts[64];             /* "mode=1777,size=N" */
    /* the merged-usr entries of / (bin, sbin, lib, lib32, lib64, libx32) */
    struct {
        const char *name;
        char *link;                /* symlink target, or NULL: bind the directory */
    } top[6];
    size_t n_top;
};

/* Fills plan from cfg (runs in the parent). */
int sandbox_mount_plan_prepare(const struct sandbox_config *cfg, struct sandbox_root_plan *plan);
/* Frees what plan owns. */
void sandbox_mount_plan_done(struct sandbox_root_plan *plan);
/* In the child, in its new mount and pid namespaces: makes / private, builds the
 * new root on a tmpfs, pivots into it, detaches the old root and makes the root
 * read-only. On failure returns -errno and stores the step in *ret_step. */
int sandbox_mount_build(const struct sandbox_root_plan *plan, int *ret_step);

/* ---- sandbox-seccomp.c ---- */

/* Loads the filter (BPF generated at build time by sandbox-seccomp-gen.c) into the
 * calling thread; needs no_new_privs set first. */
int sandbox_seccomp_install(void);

/* ---- sandbox-caps.c ---- */

/* Empties the capability bounding set and the ambient set (needs CAP_SETPCAP: call
 * while still root). */
int sandbox_caps_drop_bounding(void);
/* setgroups(0), setresgid, setresuid to the site user, then clears every remaining
 * capability set (permitted, effective, inheritable) and checks it stuck. */
int sandbox_caps_drop_to_user(uid_t uid, gid_t gid, int *ret_step);

/* ---- sandbox-net.c ---- */

/* Brings "lo" up in the current (fresh) network namespace. */
int sandbox_net_loopback_up(void);

/* ---- sandbox-netlink.c: rtnetlink requests (builders unit-tested) ---- */

#define SANDBOX_NLMSG_MAX 512

/* One rtnetlink request under construction. A builder that would overflow buf sets
 * overflow, and sandbox_netlink_call then refuses the message with -ENOBUFS. */
struct sandbox_nlmsg {
    _Alignas(4) uint8_t buf[SANDBOX_NLMSG_MAX];
    size_t len;
    bool overflow;
};

/* Starts a request: the nlmsghdr (type, flags | NLM_F_REQUEST | NLM_F_ACK) followed
 * by the family header hdr (ifinfomsg, ifaddrmsg, rtmsg) of hdr_len bytes. */
void sandbox_nlmsg_init(struct sandbox_nlmsg *m, uint16_t type, uint16_t flags, const void *hdr,
                        size_t hdr_len);
/* Appends attribute type with len bytes of data (4-byte aligned, as the kernel
 * parses them). */
void sandbox_nlmsg_put(struct sandbox_nlmsg *m, uint16_t type, const void *data, size_t len);
/* Appends a NUL-terminated string attribute. */
void sandbox_nlmsg_put_str(struct sandbox_nlmsg *m, uint16_t type, const char *s);
/* Appends a u32 attribute. */
void sandbox_nlmsg_put_u32(struct sandbox_nlmsg *m, uint16_t type, uint32_t v);
/* Opens a nested attribute; returns its offset for sandbox_nlmsg_nest_end. */
size_t sandbox_nlmsg_nest_begin(struct sandbox_nlmsg *m, uint16_t type);
/* Closes the nest opened at offset off (sets its length). */
void sandbox_nlmsg_nest_end(struct sandbox_nlmsg *m, size_t off);

/* RTM_NEWLINK creating bridge name (NLM_F_CREATE|NLM_F_EXCL). */
void sandbox_nl_bridge_new(struct sandbox_nlmsg *m, const char *name);
/* RTM_NEWLINK creating the veth pair host_name (enslaved to master_ifindex) and
 * peer_name, the peer made directly in the network namespace of peer_pid. */
void sandbox_nl_veth_new(struct sandbox_nlmsg *m, const char *host_name, int master_ifindex,
                         const char *peer_name, pid_t peer_pid);
/* RTM_NEWLINK changing the existing link name: up (IFF_UP), and, when isolated,
 * the bridge port flag IFLA_BRPORT_ISOLATED set. */
void sandbox_nl_link_set(struct sandbox_nlmsg *m, const char *name, bool isolated);
/* RTM_DELLINK of link name. */
void sandbox_nl_link_del(struct sandbox_nlmsg *m, const char *name);
/* RTM_NEWADDR addr/prefix (family AF_INET: 4 bytes, AF_INET6: 16, network
 * byte order) on ifindex, without duplicate address detection (IFA_F_NODAD), replacing
 * an existing one. */
void sandbox_nl_addr_new(struct sandbox_nlmsg *m, int family, int ifindex, const void *addr,
                         uint8_t prefix);
/* RTM_NEWROUTE: the default route of family via gateway gw out of oif. */
void sandbox_nl_route_default(struct sandbox_nlmsg *m, int family, int oif, const void *gw);

/* A NETLINK_ROUTE socket (O_CLOEXEC) in the caller's network namespace. */
int sandbox_netlink_open(void);
/* Sends m and waits for the kernel's ACK: 0, or the negative errno it reported. */
int sandbox_netlink_call(int fd, struct sandbox_nlmsg *m);

/* ---- sandbox-nat.c ---- */

/* A subnet of the nat configuration. */
struct sandbox_subnet {
    int family;                    /* AF_INET, AF_INET6, or 0 when not configured */
    uint8_t prefix;
    struct { _Alignas(4) uint8_t b[16]; } net;   /* network byte order; IPv4 in b[0..3] */
};

/* What one nat sandbox gets, worked out by the parent before clone. */
struct sandbox_nat_plan {
    char host_ifname[16];
    struct sandbox_subnet v4, v6;  /* net holds the sandbox's address */
    uint8_t gw4[4];                /* the gateways, network byte order */
    uint8_t gw6[16];
};

/* Parses "10.88.0.0/16" or "fd00:1::/64" (host bits must be zero; IPv4 /8../30,
 * IPv6 /64../120). -EINVAL otherwise. */
int sandbox_subnet_parse(const char *text, struct sandbox_subnet *ret);
/* Address number host in subnet (1: the gateway). -ERANGE when host is 0 or does not
 * fit (IPv4: neither can it be the broadcast address). */
int sandbox_subnet_host(const struct sandbox_subnet *sn, uint32_t host, struct sandbox_subnet *ret);
/* The nft ruleset (malloc'd) that sandbox_nat_setup loads, for the bridge, subnets
 * (family 0: absent) and allow entries ("tcp/53"). -EINVAL for a bad allow entry. */
int sandbox_nat_ruleset(const char *bridge, const struct sandbox_subnet *v4, const struct sandbox_subnet *v6,
                        const char *const *allow, char **ret);
/* resolv.conf for a nat sandbox (malloc'd) from the host's text (may be NULL): the
 * host's lines without loopback name servers (unreachable from the sandbox); when
 * none is left, the gateways (gw4/gw6 may be NULL), where the host's resolver answers
 * if the allow-list lets DNS through. */
int sandbox_nat_resolv_conf(const char *host_text, const char *gw4, const char *gw6, char **ret);
/* Fills plan for uid's sandbox. -ERANGE when uid has no address in the subnets. */
int sandbox_nat_plan_prepare(const struct sandbox_nat *nat, uid_t uid, struct sandbox_nat_plan *plan);
/* Parent, between clone and sync point 1: creates the veth pair of plan (host end
 * on the bridge, isolated and up; "eth0" in the namespace of child_pid). */
int sandbox_nat_attach(const struct sandbox_nat *nat, const struct sandbox_nat_plan *plan, pid_t child_pid);
/* Child, in its namespace: eth0 up, its addresses and the default routes. */
int sandbox_net_nat_configure(const struct sandbox_nat_plan *plan);
/* resolv.conf for sandboxes of nat (malloc'd), from the host's text. */
int sandbox_nat_plan_resolv(const struct sandbox_nat *nat, const char *host_text, char **ret);
