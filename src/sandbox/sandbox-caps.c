/* Dropping root: every capability set, then the uid/gid. Runs in the child only. */
#include "sandbox/sandbox-internal.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int sandbox_caps_drop_bounding(void)
{
    /* The bounding set limits what an execve of a file capability or setuid-root
     * binary could ever grant back (capabilities(7)); emptying it needs
     * CAP_SETPCAP, so this runs while we are still root. The loop stops at the
     * first number the kernel does not know (EINVAL past cap_last_cap). */
    for (unsigned long cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break;
            return -errno;
        }
    }
    /* Ambient capabilities survive execve of unprivileged binaries (4.3+). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

int sandbox_caps_drop_to_user(uid_t uid, gid_t gid, int *ret_step)
{
    *ret_step = SANDBOX_STEP_UID;
    if (uid == 0 || gid == 0 || uid == (uid_t)-1 || gid == (gid_t)-1)
        return -EINVAL;
    /* Supplementary groups first: root's (e.g. gid 0 itself) would otherwise stay
     * with the process after setresgid, which does not touch them. */
    if (setgroups(0, NULL) < 0)
        return -errno;
    if (setresgid(gid, gid, gid) < 0)
        return -errno;
    /* All three uids non-zero: the kernel clears permitted, effective and ambient
     * (capabilities(7), "Effect of user ID changes on capabilities"). */
    if (setresuid(uid, uid, uid) < 0)
        return -errno;

    *ret_step = SANDBOX_STEP_CAPS;
    /* The inheritable set is not cleared by the uid change; clear everything
     * explicitly and read it back. */
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2] = { { 0 } };
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    for (size_t i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return -EPERM;
    /* Paranoia (bubblewrap does the same): regaining root must be impossible now. */
    if (setuid(0) == 0)
        return -EPERM;
    return 0;
}
