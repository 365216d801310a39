/* Tests for src/sandbox/sandbox-nat.c and sandbox-netlink.c: the pure parts
 * (subnets, addresses derived from uids, the nft ruleset, resolv.conf, and the
 * bytes of rtnetlink requests). Nothing is sent to the kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "sandbox/sandbox-internal.h"

static void text_of(const struct sandbox_subnet *sn, char *out)
{
    inet_ntop(sn->family, sn->net.b, out, INET6_ADDRSTRLEN);
}

static void test_subnet_parse(void **state)
{
    struct sandbox_subnet sn;
    char t[INET6_ADDRSTRLEN];
    assert_int_equal(sandbox_subnet_parse("10.88.0.0/16", &sn), 0);
    assert_int_equal(sn.family, AF_INET);
    assert_int_equal(sn.prefix, 16);
    assert_int_equal(sandbox_subnet_parse("fd8b:e27a:1b5e::/64", &sn), 0);
    assert_int_equal(sn.family, AF_INET6);
    text_of(&sn, t);
    assert_string_equal(t, "fd8b:e27a:1b5e::");
    /* host bits set, no prefix, prefixes too wide or too narrow, junk */
    assert_int_equal(sandbox_subnet_parse("10.88.1.0/16", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("10.88.0.0", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("10.0.0.0/7", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("10.0.0.0/31", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("fd00::/48", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("fd00::/121", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("fd00::1/64", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("berth/16", &sn), -EINVAL);
    assert_int_equal(sandbox_subnet_parse("10.88.0.0/16x", &sn), -EINVAL);
}

static void test_subnet_host(void **state)
{
    struct sandbox_subnet sn, h;
    char t[INET6_ADDRSTRLEN];
    assert_int_equal(sandbox_subnet_parse("10.88.0.0/16", &sn), 0);
    assert_int_equal(sandbox_subnet_host(&sn, 1, &h), 0);
    text_of(&h, t);
    assert_string_equal(t, "10.88.0.1");
    assert_int_equal(h.prefix, 16);
    assert_int_equal(sandbox_subnet_host(&sn, 258, &h), 0);
    text_of(&h, t);
    assert_string_equal(t, "10.88.1.2");
    assert_int_equal(sandbox_subnet_host(&sn, 65534, &h), 0);
    text_of(&h, t);
    assert_string_equal(t, "10.88.255.254");
    /* the network and broadcast addresses are nobody's */
    assert_int_equal(sandbox_subnet_host(&sn, 0, &h), -ERANGE);
    assert_int_equal(sandbox_subnet_host(&sn, 65535, &h), -ERANGE);
    assert_int_equal(sandbox_subnet_parse("fd00:1:2:3::/64", &sn), 0);
    assert_int_equal(sandbox_subnet_host(&sn, 0x10002, &h), 0);
    text_of(&h, t);
    assert_string_equal(t, "fd00:1:2:3::1:2");
    assert_int_equal(sandbox_subnet_parse("fd00::/120", &sn), 0);
    assert_int_equal(sandbox_subnet_host(&sn, 255, &h), 0);
    assert_int_equal(sandbox_subnet_host(&sn, 256, &h), -ERANGE);
}

static void test_nat_addresses_from_uid(void **state)
{
    const struct sandbox_nat_config cfg = {
        .bridge = "berth0", .ipv4 = "10.88.0.0/16", .ipv6 = "fd8b:e27a:1b5e::/64", .uid_base = 200000,
    };
    struct sandbox_nat *nat = NULL;
    assert_int_equal(sandbox_nat_new(&cfg, &nat), 0);
    char v4[46], v6[46];
    /* The first uid gets .2 (.1 is the gateway); stable: the same uid, the same address. */
    assert_int_equal(sandbox_nat_address(nat, 200000, v4, v6), 0);
    assert_string_equal(v4, "10.88.0.2");
    assert_string_equal(v6, "fd8b:e27a:1b5e::2");
    assert_int_equal(sandbox_nat_address(nat, 200300, v4, v6), 0);
    assert_string_equal(v4, "10.88.1.46");
    assert_string_equal(v6, "fd8b:e27a:1b5e::12e");
    /* uids below the base or past the subnet have no address */
    assert_int_equal(sandbox_nat_address(nat, 199999, v4, v6), -ERANGE);
    assert_int_equal(sandbox_nat_address(nat, 200000 + 65533, v4, v6), -ERANGE);
    assert_int_equal(sandbox_nat_address(nat, 200000 + 65532, v4, v6), 0);
    assert_string_equal(v4, "10.88.255.254");

    struct sandbox_nat_plan plan;
    assert_int_equal(sandbox_nat_plan_prepare(nat, 200001, &plan), 0);
    assert_string_equal(plan.host_ifname, "bv200001");
    assert_int_equal(plan.v4.prefix, 16);
    assert_int_equal(plan.v6.prefix, 64);
    char gw[46];
    inet_ntop(AF_INET, plan.gw4, gw, sizeof(gw));
    assert_string_equal(gw, "10.88.0.1");
    inet_ntop(AF_INET6, plan.gw6, gw, sizeof(gw));
    assert_string_equal(gw, "fd8b:e27a:1b5e::1");
    sandbox_nat_free(nat);

    /* IPv4 only */
    const struct sandbox_nat_config only4 = { .bridge = "b", .ipv4 = "192.168.7.0/24", .uid_base = 10 };
    assert_int_equal(sandbox_nat_new(&only4, &nat), 0);
    assert_int_equal(sandbox_nat_address(nat, 12, v4, v6), 0);
    assert_string_equal(v4, "192.168.7.4");
    assert_string_equal(v6, "");
    sandbox_nat_free(nat);

    /* bad configurations are refused before anything is touched */
    const struct sandbox_nat_config bad[] = {
        { .bridge = "a-name-far-too-long", .ipv4 = "10.88.0.0/16" },
        { .bridge = "", .ipv4 = "10.88.0.0/16" },
        { .bridge = "b\"r", .ipv4 = "10.88.0.0/16" },
        { .bridge = "br;x", .ipv4 = "10.88.0.0/16" },
        { .bridge = "br}", .ipv4 = "10.88.0.0/16" },
        { .bridge = "b r", .ipv4 = "10.88.0.0/16" },
        { .bridge = "..", .ipv4 = "10.88.0.0/16" },
        { .bridge = "br", .ipv4 = "fd00::/64" },
        { .bridge = "br" },
        { .bridge = "br", .ipv4 = "10.88.0.0/16", .allow = (const char *const[]){ "icmp/1", NULL } },
        { .bridge = "br", .ipv4 = "10.88.0.0/16", .allow = (const char *const[]){ "tcp/0", NULL } },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sandbox_nat_new(&bad[i], &nat), -EINVAL);
}

static void test_ruleset(void **state)
{
    struct sandbox_subnet v4, v6;
    assert_int_equal(sandbox_subnet_parse("10.88.0.0/16", &v4), 0);
    assert_int_equal(sandbox_subnet_parse("fd00:88::/64", &v6), 0);
    char *rules = NULL;
    const char *const allow[] = { "udp/53", "tcp/53", NULL };
    assert_int_equal(sandbox_nat_ruleset("berth0", &v4, &v6, allow, &rules), 0);
    /* the table of a previous life is replaced in the same transaction */
    assert_non_null(strstr(rules, "table inet berth-berth0 {}\ndelete table inet berth-berth0\n"));
    assert_non_null(strstr(rules, "oifname != \"berth0\" ip saddr 10.88.0.0/16 masquerade"));
    assert_non_null(strstr(rules, "oifname != \"berth0\" ip6 saddr fd00:88::/64 masquerade"));
    assert_non_null(strstr(rules, "iifname \"berth0\" udp dport 53 accept"));
    assert_non_null(strstr(rules, "iifname \"berth0\" tcp dport 53 accept"));
    assert_non_null(strstr(rules, "iifname \"berth0\" oifname \"berth0\" reject"));
    /* link-local (a cloud's metadata service) refused before the forward accept */
    assert_non_null(strstr(rules, "iifname \"berth0\" ip daddr 169.254.0.0/16 reject"));
    assert_non_null(strstr(rules, "iifname \"berth0\" ip6 daddr fe80::/10 reject"));
    assert_true(strstr(rules, "ip daddr 169.254.0.0/16 reject") < strstr(rules, "iifname \"berth0\" accept"));
    /* the allowed services come before the input's final reject */
    assert_true(strstr(rules, "tcp dport 53 accept") < strstr(rules, "iifname \"berth0\" reject"));
    free(rules);
    struct sandbox_subnet none = { 0 };
    assert_int_equal(sandbox_nat_ruleset("br", &v4, &none, NULL, &rules), 0);
    assert_null(strstr(rules, "ip6 saddr"));
    assert_null(strstr(rules, "dport"));
    free(rules);
    const char *const bad[] = { "tcp/53", "sctp/1", NULL };
    assert_int_equal(sandbox_nat_ruleset("br", &v4, &v6, bad, &rules), -EINVAL);
}

static void test_resolv_conf(void **state)
{
    char *out = NULL;
    /* systemd-resolved's stub is on the host's loopback: the gateways replace it */
    assert_int_equal(sandbox_nat_resolv_conf("# managed\nnameserver 127.0.0.53\noptions edns0\nsearch lan\n",
                                             "10.88.0.1", "fd00::1", &out), 0);
    assert_string_equal(out, "# managed\noptions edns0\nsearch lan\nnameserver 10.88.0.1\nnameserver fd00::1\n");
    free(out);
    /* reachable servers stay, and then no gateway is added */
    assert_int_equal(sandbox_nat_resolv_conf("nameserver ::1\nnameserver 192.0.2.53\nnameserver fe80::1\n",
                                             "10.88.0.1", "", &out), 0);
    assert_string_equal(out, "nameserver 192.0.2.53\n");
    free(out);
    assert_int_equal(sandbox_nat_resolv_conf(NULL, "10.88.0.1", NULL, &out), 0);
    assert_string_equal(out, "nameserver 10.88.0.1\n");
    free(out);
}

/* Finds attribute type in [p, p+len); NULL if absent. */
static const struct nlattr *find_attr(const uint8_t *p, size_t len, uint16_t type)
{
    size_t off = 0;
    while (off + sizeof(struct nlattr) <= len) {
        const struct nlattr *a = (const struct nlattr *)(p + off);
        assert_true(a->nla_len >= sizeof(*a) && off + a->nla_len <= len);
        if ((a->nla_type & NLA_TYPE_MASK) == type)
            return a;
        off += NLA_ALIGN(a->nla_len);
    }
    return NULL;
}

#define ATTR_DATA(a) ((const uint8_t *)(a) + NLA_HDRLEN)
#define ATTR_LEN(a) ((size_t)(a)->nla_len - NLA_HDRLEN)

static void test_veth_message(void **state)
{
    struct sandbox_nlmsg m;
    sandbox_nl_veth_new(&m, "bv200001", 7, "eth0", 4242);
    assert_false(m.overflow);
    const struct nlmsghdr *h = (const struct nlmsghdr *)m.buf;
    assert_int_equal(h->nlmsg_len, m.len);
    assert_int_equal(h->nlmsg_type, RTM_NEWLINK);
    assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    const uint8_t *attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg));
    size_t alen = m.len - (size_t)(attrs - m.buf);
    const struct nlattr *a = find_attr(attrs, alen, IFLA_IFNAME);
    assert_non_null(a);
    assert_string_equal((const char *)ATTR_DATA(a), "bv200001");
    a = find_attr(attrs, alen, IFLA_MASTER);
    assert_non_null(a);
    assert_int_equal(*(const uint32_t *)ATTR_DATA(a), 7);
    const struct nlattr *li = find_attr(attrs, alen, IFLA_LINKINFO);
    assert_non_null(li);
    assert_true(li->nla_type & NLA_F_NESTED);
    a = find_attr(ATTR_DATA(li), ATTR_LEN(li), IFLA_INFO_KIND);
    assert_string_equal((const char *)ATTR_DATA(a), "veth");
    const struct nlattr *data = find_attr(ATTR_DATA(li), ATTR_LEN(li), IFLA_INFO_DATA);
    assert_non_null(data);
    const struct nlattr *peer = find_attr(ATTR_DATA(data), ATTR_LEN(data), VETH_INFO_PEER);
    assert_non_null(peer);
    /* the peer's payload is an ifinfomsg, then its attributes */
    const uint8_t *pattrs = ATTR_DATA(peer) + NLMSG_ALIGN(sizeof(struct ifinfomsg));
    size_t plen = ATTR_LEN(peer) - NLMSG_ALIGN(sizeof(struct ifinfomsg));
    a = find_attr(pattrs, plen, IFLA_IFNAME);
    assert_string_equal((const char *)ATTR_DATA(a), "eth0");
    a = find_attr(pattrs, plen, IFLA_NET_NS_PID);
    assert_non_null(a);
    assert_int_equal(*(const uint32_t *)ATTR_DATA(a), 4242);
    /* nests end where the message ends */
    assert_int_equal((size_t)((const uint8_t *)li - m.buf) + li->nla_len, m.len);
}

static void test_link_set_isolated(void **state)
{
    struct sandbox_nlmsg m;
    sandbox_nl_link_set(&m, "bv1", true);
    const struct ifinfomsg *ifi = (const struct ifinfomsg *)(m.buf + NLMSG_HDRLEN);
    assert_int_equal(ifi->ifi_flags & IFF_UP, IFF_UP);
    assert_int_equal(ifi->ifi_change & IFF_UP, IFF_UP);
    const uint8_t *attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*ifi));
    size_t alen = m.len - (size_t)(attrs - m.buf);
    const struct nlattr *li = find_attr(attrs, alen, IFLA_LINKINFO);
    assert_non_null(li);
    const struct nlattr *sd = find_attr(ATTR_DATA(li), ATTR_LEN(li), IFLA_INFO_SLAVE_DATA);
    assert_non_null(sd);
    const struct nlattr *iso = find_attr(ATTR_DATA(sd), ATTR_LEN(sd), IFLA_BRPORT_ISOLATED);
    assert_non_null(iso);
    assert_int_equal(*ATTR_DATA(iso), 1);
    /* not isolated: no link info at all */
    sandbox_nl_link_set(&m, "berth0", false);
    attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*ifi));
    assert_null(find_attr(attrs, m.len - (size_t)(attrs - m.buf), IFLA_LINKINFO));
}

static void test_addr_and_route_messages(void **state)
{
    struct sandbox_nlmsg m;
    struct in6_addr a6;
    inet_pton(AF_INET6, "fd00::5", &a6);
    sandbox_nl_addr_new(&m, AF_INET6, 3, &a6, 64);
    const struct ifaddrmsg *ifa = (const struct ifaddrmsg *)(m.buf + NLMSG_HDRLEN);
    assert_int_equal(ifa->ifa_family, AF_INET6);
    assert_int_equal(ifa->ifa_prefixlen, 64);
    assert_int_equal(ifa->ifa_index, 3);
    assert_true(ifa->ifa_flags & IFA_F_NODAD);
    const uint8_t *attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*ifa));
    size_t alen = m.len - (size_t)(attrs - m.buf);
    const struct nlattr *a = find_attr(attrs, alen, IFA_LOCAL);
    assert_non_null(a);
    assert_int_equal(ATTR_LEN(a), 16);
    assert_memory_equal(ATTR_DATA(a), &a6, 16);

    struct in_addr gw;
    inet_pton(AF_INET, "10.88.0.1", &gw);
    sandbox_nl_route_default(&m, AF_INET, 9, &gw);
    const struct nlmsghdr *h = (const struct nlmsghdr *)m.buf;
    assert_int_equal(h->nlmsg_type, RTM_NEWROUTE);
    const struct rtmsg *rt = (const struct rtmsg *)(m.buf + NLMSG_HDRLEN);
    assert_int_equal(rt->rtm_dst_len, 0);
    assert_int_equal(rt->rtm_table, RT_TABLE_MAIN);
    attrs = m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*rt));
    alen = m.len - (size_t)(attrs - m.buf);
    a = find_attr(attrs, alen, RTA_GATEWAY);
    assert_non_null(a);
    assert_memory_equal(ATTR_DATA(a), &gw, 4);
    a = find_attr(attrs, alen, RTA_OIF);
    assert_int_equal(*(const uint32_t *)ATTR_DATA(a), 9);
}

static void test_overflow_is_refused(void **state)
{
    struct sandbox_nlmsg m;
    sandbox_nl_link_del(&m, "x");
    char big[SANDBOX_NLMSG_MAX];
    memset(big, 'a', sizeof(big));
    sandbox_nlmsg_put(&m, IFLA_IFALIAS, big, sizeof(big));
    assert_true(m.overflow);
    /* refused before any socket is used */
    assert_int_equal(sandbox_netlink_call(-1, &m), -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subnet_parse),
        cmocka_unit_test(test_subnet_host),
        cmocka_unit_test(test_nat_addresses_from_uid),
        cmocka_unit_test(test_ruleset),
        cmocka_unit_test(test_resolv_conf),
        cmocka_unit_test(test_veth_message),
        cmocka_unit_test(test_link_set_isolated),
        cmocka_unit_test(test_addr_and_route_messages),
        cmocka_unit_test(test_overflow_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
