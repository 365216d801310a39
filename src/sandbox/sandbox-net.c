/* Networking inside the sandbox. Modes "none" and "nat" are a fresh network
 * namespace: it starts with only "lo", and down, so even 127.0.0.1 would fail until
 * it is brought up. Network nat's eth0 is in sandbox-nat.c. */
#include "sandbox/sandbox-internal.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int sandbox_net_loopback_up(void)
{
    _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct ifreq ifr = { 0 };
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        return -errno;
    return 0;
}

int sandbox_network_from_string(const char *s, enum sandbox_network *ret)
{
    if (streq(s, "none")) {
        *ret = SANDBOX_NETWORK_NONE;
        return 0;
    }
    if (streq(s, "host")) {
        *ret = SANDBOX_NETWORK_HOST;
        return 0;
    }
    if (streq(s, "nat")) {
        *ret = SANDBOX_NETWORK_NAT;
        return 0;
    }
    return -EINVAL;
}
