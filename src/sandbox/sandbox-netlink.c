/* rtnetlink requests for network nat: a bridge, a veth pair with one end made in
 * the sandbox's namespace, addresses and default routes. Spoken directly (no `ip`
 * process): a nat sandbox start sends about six short messages. Every request
 * asks for an ACK (NLM_F_ACK), so each step's error comes back as its own errno. */
#include "sandbox/sandbox-internal.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>
#include <time.h>

#define NL_ALIGN(n) (((n) + 3U) & ~(size_t)3U)

void sandbox_nlmsg_init(struct sandbox_nlmsg *m, uint16_t type, uint16_t flags, const void *hdr,
                        size_t hdr_len)
{
    memset(m, 0, sizeof(*m));
    struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
    h->nlmsg_type = type;
    h->nlmsg_flags = (uint16_t)(flags | NLM_F_REQUEST | NLM_F_ACK);
    m->len = NLMSG_HDRLEN;
    if (hdr_len > sizeof(m->buf) - m->len) {
        m->overflow = true;
        return;
    }
    memcpy(m->buf + m->len, hdr, hdr_len);
    m->len += NL_ALIGN(hdr_len);
    h->nlmsg_len = (uint32_t)m->len;
}

void sandbox_nlmsg_put(struct sandbox_nlmsg *m, uint16_t type, const void *data, size_t len)
{
    size_t need = NL_ALIGN(sizeof(struct nlattr) + len);
    if (m->overflow || need > sizeof(m->buf) - m->len) {
        m->overflow = true;
        return;
    }
    struct nlattr *a = (struct nlattr *)(m->buf + m->len);
    a->nla_type = type;
    a->nla_len = (uint16_t)(sizeof(struct nlattr) + len);
    if (len)
        memcpy(a + 1, data, len);
    m->len += need;
    ((struct nlmsghdr *)m->buf)->nlmsg_len = (uint32_t)m->len;
}

void sandbox_nlmsg_put_str(struct sandbox_nlmsg *m, uint16_t type, const char *s)
{
    sandbox_nlmsg_put(m, type, s, strlen(s) + 1);
}

void sandbox_nlmsg_put_u32(struct sandbox_nlmsg *m, uint16_t type, uint32_t v)
{
    sandbox_nlmsg_put(m, type, &v, sizeof(v));
}

size_t sandbox_nlmsg_nest_begin(struct sandbox_nlmsg *m, uint16_t type)
{
    size_t off = m->len;
    sandbox_nlmsg_put(m, type | NLA_F_NESTED, NULL, 0);
    return off;
}

void sandbox_nlmsg_nest_end(struct sandbox_nlmsg *m, size_t off)
{
    if (m->overflow)
        return;
    struct nlattr *a = (struct nlattr *)(m->buf + off);
    a->nla_len = (uint16_t)(m->len - off);
}

void sandbox_nl_bridge_new(struct sandbox_nlmsg *m, const char *name)
{
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    sandbox_nlmsg_init(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
    sandbox_nlmsg_put_str(m, IFLA_IFNAME, name);
    size_t li = sandbox_nlmsg_nest_begin(m, IFLA_LINKINFO);
    sandbox_nlmsg_put_str(m, IFLA_INFO_KIND, "bridge");
    sandbox_nlmsg_nest_end(m, li);
}

void sandbox_nl_veth_new(struct sandbox_nlmsg *m, const char *host_name, int master_ifindex,
                         const char *peer_name, pid_t peer_pid)
{
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    sandbox_nlmsg_init(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
    sandbox_nlmsg_put_str(m, IFLA_IFNAME, host_name);
    /* Enslaved at creation (rtnl_newlink handles IFLA_MASTER for a new device), but
     * down: it forwards nothing before sandbox_nl_link_set isolates it. */
    sandbox_nlmsg_put_u32(m, IFLA_MASTER, (uint32_t)master_ifindex);
    size_t li = sandbox_nlmsg_nest_begin(m, IFLA_LINKINFO);
    sandbox_nlmsg_put_str(m, IFLA_INFO_KIND, "veth");
    size_t data = sandbox_nlmsg_nest_begin(m, IFLA_INFO_DATA);
    /* The peer: a struct ifinfomsg, then its own attributes (veth_newlink). Made
     * directly in the target namespace, so the name "eth0" never meets the host's. */
    size_t peer = sandbox_nlmsg_nest_begin(m, VETH_INFO_PEER);
    struct ifinfomsg pifi = { .ifi_family = AF_UNSPEC };
    if (!m->overflow && sizeof(pifi) <= sizeof(m->buf) - m->len) {
        memcpy(m->buf + m->len, &pifi, sizeof(pifi));
        m->len += NL_ALIGN(sizeof(pifi));
        ((struct nlmsghdr *)m->buf)->nlmsg_len = (uint32_t)m->len;
    } else {
        m->overflow = true;
    }
    sandbox_nlmsg_put_str(m, IFLA_IFNAME, peer_name);
    sandbox_nlmsg_put_u32(m, IFLA_NET_NS_PID, (uint32_t)peer_pid);
    sandbox_nlmsg_nest_end(m, peer);
    sandbox_nlmsg_nest_end(m, data);
    sandbox_nlmsg_nest_end(m, li);
}

void sandbox_nl_link_set(struct sandbox_nlmsg *m, const char *name, bool isolated)
{
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
    sandbox_nlmsg_init(m, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
    sandbox_nlmsg_put_str(m, IFLA_IFNAME, name);
    if (isolated) {
        /* Applied by the master's slave_changelink before do_setlink raises IFF_UP,
         * so the port is isolated before it forwards its first frame. An isolated
         * port talks only to non-isolated ones (the bridge itself), never to
         * another isolated port (br_skb_isolated, 4.18+). */
        size_t li = sandbox_nlmsg_nest_begin(m, IFLA_LINKINFO);
        sandbox_nlmsg_put_str(m, IFLA_INFO_SLAVE_KIND, "bridge");
        size_t sd = sandbox_nlmsg_nest_begin(m, IFLA_INFO_SLAVE_DATA);
        uint8_t one = 1;
        sandbox_nlmsg_put(m, IFLA_BRPORT_ISOLATED, &one, sizeof(one));
        sandbox_nlmsg_nest_end(m, sd);
        sandbox_nlmsg_nest_end(m, li);
    }
}

void sandbox_nl_link_del(struct sandbox_nlmsg *m, const char *name)
{
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    sandbox_nlmsg_init(m, RTM_DELLINK, 0, &ifi, sizeof(ifi));
    sandbox_nlmsg_put_str(m, IFLA_IFNAME, name);
}

void sandbox_nl_addr_new(struct sandbox_nlmsg *m, int family, int ifindex, const void *addr,
                         uint8_t prefix)
{
    /* No DAD: a tentative IPv6 address cannot be used as a source for about a
     * second (RFC 4862), which every sandbox start would pay; the addresses are
     * unique by construction (one per site uid, the gateway .1). */
    struct ifaddrmsg ifa = {
        .ifa_family = (uint8_t)family, .ifa_prefixlen = prefix,
        .ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0,
        .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = (uint32_t)ifindex,
    };
    size_t len = family == AF_INET ? 4 : 16;
    sandbox_nlmsg_init(m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
    sandbox_nlmsg_put(m, IFA_LOCAL, addr, len);
    sandbox_nlmsg_put(m, IFA_ADDRESS, addr, len);
    if (family == AF_INET6)
        sandbox_nlmsg_put_u32(m, IFA_FLAGS, IFA_F_NODAD);
}

void sandbox_nl_route_default(struct sandbox_nlmsg *m, int family, int oif, const void *gw)
{
    struct rtmsg rt = {
        .rtm_family = (uint8_t)family, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
        .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST,
    };
    sandbox_nlmsg_init(m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof(rt));
    sandbox_nlmsg_put(m, RTA_GATEWAY, gw, family == AF_INET ? 4 : 16);
    sandbox_nlmsg_put_u32(m, RTA_OIF, (uint32_t)oif);
}

int sandbox_netlink_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    /* A reply never waits longer than this: the calls are all synchronous in the
     * kernel, so a missing answer means something is badly wrong. */
    struct timeval tv = { .tv_sec = 5 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* Errors without a copy of our request (4.3+): an answer always fits. */
    int one = 1;
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return fd;
}

int sandbox_netlink_call(int fd, struct sandbox_nlmsg *m)
{
    static uint32_t seq;
    if (m->overflow)
        return -ENOBUFS;
    struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
    h->nlmsg_seq = ++seq ? seq : ++seq;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -errno;
    /* Room for an error message that quotes our whole request back. */
    _Alignas(4) uint8_t buf[SANDBOX_NLMSG_MAX + 256];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        size_t off = 0;
        while (off + sizeof(struct nlmsghdr) <= (size_t)n) {
            const struct nlmsghdr *r = (const struct nlmsghdr *)(buf + off);
            if (r->nlmsg_len < sizeof(*r) || r->nlmsg_len > (size_t)n - off)
                return -EPROTO;
            off += NLMSG_ALIGN(r->nlmsg_len);
            if (r->nlmsg_seq != h->nlmsg_seq)
                continue;   /* a late answer to an earlier request */
            if (r->nlmsg_type == NLMSG_ERROR) {
                if (r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                    return -EPROTO;
                const struct nlmsgerr *e = NLMSG_DATA(r);
                return e->error;   /* 0 is the ACK */
            }
        }
    }
}
