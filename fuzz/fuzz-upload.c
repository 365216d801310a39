/* Feeds arbitrary bytes to the extractor as an archive. The tree goes into
 * <tmp>/jail/tree; whatever the input, nothing may appear in <tmp>/jail besides
 * tree, and nothing in <tmp> besides jail (an escape through "..", a symlink or a
 * hard link would land there first). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <dirent.h>

#include "common/fs.h"
#include "upload/upload.h"

static int count_entries(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d)
        abort();
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += !streq(de->d_name, ".") && !streq(de->d_name, "..");
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char base[] = "/tmp/fuzz-upload-XXXXXX";
    if (!mkdtemp(base))
        abort();
    int basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0 || mkdirat(basefd, "jail", 0700) < 0)
        abort();
    int jail = openat(basefd, "jail", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (jail < 0 || mkdirat(jail, "tree", 0700) < 0)
        abort();
    int tree = openat(jail, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int archive = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (tree < 0 || archive < 0)
        abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = write(archive, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    lseek(archive, 0, SEEK_SET);

    /* Small limits keep each run quick; the checks are the same. */
    struct upload_limits lim;
    upload_limits_default(&lim);
    lim.max_total_bytes = 4 << 20;
    lim.max_entries = 1000;
    lim.max_header_bytes = 256 << 10;
    struct error err;
    upload_extract(tree, archive, &lim, getuid(), getgid(), &err, NULL);

    if (count_entries(jail) != 1 || count_entries(basefd) != 1) {
        fprintf(stderr, "escaped the tree: %s\n", base);
        abort();
    }
    close(archive);
    close(tree);
    close(jail);
    close(basefd);
    rm_rf(base);
    return 0;
}
