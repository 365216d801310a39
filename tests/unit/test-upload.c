/* Unit tests for src/upload: archives are built here with libarchive's writer,
 * unpacked into temp dirs, and the result checked on disk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "upload/upload-internal.h"

#define UID 40123
#define GID 40124

struct ent {
    const char *path;
    char kind;              /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char device, 'p' fifo,
                             * 's' sparse file: data, then a hole up to zeros bytes in all */
    const char *data;       /* file contents, or link target */
    mode_t perm;            /* 0: 0644 / 0755 */
    size_t zeros;           /* file: this many zero bytes instead of data */
};

/* Writes ents as an archive in format ("tar", "zip", "zip-stored", "tar.gz", "tar.zst", "tar.xz")
 * to an unlinked temp file and returns its fd, rewound. */
static int build(const char *format, const struct ent *ents, size_t n)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    struct archive *a = archive_write_new();
    if (streq(format, "zip") || streq(format, "zip-stored")) {
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
        if (streq(format, "zip-stored"))
            assert_int_equal(archive_write_set_options(a, "zip:compression=store"), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (streq(format, "tar.gz"))
            assert_true(archive_write_add_filter_gzip(a) >= ARCHIVE_WARN);
        else if (streq(format, "tar.zst"))
            assert_true(archive_write_add_filter_zstd(a) >= ARCHIVE_WARN);
        else if (streq(format, "tar.xz"))
            assert_true(archive_write_add_filter_xz(a) >= ARCHIVE_WARN);
    }
    assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        const struct ent *e = &ents[i];
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e->path);
        archive_entry_set_mtime(ae, 1500000000 + (time_t)i, 0);
        size_t len = 0;
        switch (e->kind) {
        case 'f':
            len = e->zeros ? e->zeros : strlen(e->data ? e->data : "");
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, e->perm ? e->perm : 0644);
            archive_entry_set_size(ae, (la_int64_t)len);
            break;
        case 'd':
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, e->perm ? e->perm : 0755);
            break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_perm(ae, 0777);
            archive_entry_set_symlink(ae, e->data);
            break;
        case 's':
            len = e->zeros;
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, 0644);
            archive_entry_set_size(ae, (la_int64_t)len);
            archive_entry_sparse_add_entry(ae, 0, (la_int64_t)strlen(e->data));
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, 0644);
            archive_entry_set_hardlink(ae, e->data);
            archive_entry_set_size(ae, 0);
            break;
        case 'c':
            archive_entry_set_filetype(ae, AE_IFCHR);
            archive_entry_set_perm(ae, 0644);
            archive_entry_set_rdevmajor(ae, 1);
            archive_entry_set_rdevminor(ae, 3);
            break;
        case 'p':
            archive_entry_set_filetype(ae, AE_IFIFO);
            archive_entry_set_perm(ae, 0644);
            break;
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (e->kind == 's') {
            /* The writer takes the whole stream and drops the hole's zeros. */
            size_t data_len = strlen(e->data);
            assert_int_equal(archive_write_data(a, e->data, data_len), (la_ssize_t)data_len);
            static const char zero[65536];
            for (size_t done = data_len; done < e->zeros;) {
                size_t k = MIN(sizeof(zero), e->zeros - done);
                assert_int_equal(archive_write_data(a, zero, k), (la_ssize_t)k);
                done += k;
            }
        } else if (e->kind == 'f' && e->zeros) {
            static const char zero[65536];
            for (size_t done = 0; done < e->zeros;) {
                size_t k = MIN(sizeof(zero), e->zeros - done);
                assert_int_equal(archive_write_data(a, zero, k), (la_ssize_t)k);
                done += k;
            }
        } else if (e->kind == 'f' && len) {
            assert_int_equal(archive_write_data(a, e->data, len), (la_ssize_t)len);
        }
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* A fresh directory under /tmp for one test: dir holds its path, the fd is returned. */
static int tmpdir(char dir[static 64])
{
    snprintf(dir, 64, "/tmp/test-upload-XXXXXX");
    assert_non_null(mkdtemp(dir));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static char *slurp(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    static char data[4096];
    ssize_t n = read(fd, data, sizeof(data) - 1);
    close(fd);
    data[n < 0 ? 0 : n] = 0;
    return data;
}

/* Extracts ents (in format) into a new temp dir; returns the result, leaves the
 * error in err and the dir's fd in *ret_fd (the caller removes dir). */
static int run(const char *format, const struct ent *ents, size_t n, const struct upload_limits *lim,
               struct error *err, char dir[static 64], int *ret_fd)
{
    int archive = build(format, ents, n);
    int fd = tmpdir(dir);
    *err = (struct error){ 0 };
    int r = upload_extract(fd, archive, lim, UID, GID, err, NULL);
    close(archive);
    *ret_fd = fd;
    return r;
}

/* Expects ents to be refused with code and a message containing what; and the
 * parent of the tree to hold nothing new. */
static void expect_refused(const char *format, const struct ent *ents, size_t n,
                           const struct upload_limits *lim, int code, const char *what)
{
    char dir[64];
    int fd;
    struct error err;
    int r = run(format, ents, n, lim, &err, dir, &fd);
    if (r != code || !strstr(err.message, what))
        fail_msg("expected %d \"%s\", got %d \"%s\"", code, what, r, err.message);
    close(fd);
    rm_rf(dir);
}

static void test_tar_tree(void **state)
{
    const struct ent ents[] = {
        { "index.html", 'f', "<h1>hello</h1>\n" },
        { "css", 'd', NULL, 0777 },
        { "css/site.css", 'f', "body{}" },
        { "bin/run.sh", 'f', "#!/bin/sh\n", 04755 },
        { "link", 'l', "css/site.css" },
        { "same", 'h', "index.html" },
    };
    char dir[64];
    int fd;
    struct error err;
    int archive = build("tar", ents, ARRAY_SIZE(ents));
    fd = tmpdir(dir);
    struct upload_stats st;
    assert_int_equal(upload_extract(fd, archive, NULL, UID, GID, &err, &st), 0);
    close(archive);
    assert_int_equal(st.files, 4);
    assert_int_equal(st.symlinks, 1);
    assert_int_equal(st.dirs, 2);   /* css, and bin made for bin/run.sh */
    assert_int_equal(st.bytes, strlen("<h1>hello</h1>\n") + strlen("body{}") + strlen("#!/bin/sh\n"));
    assert_string_equal(slurp(fd, "index.html"), "<h1>hello</h1>\n");
    assert_string_equal(slurp(fd, "css/site.css"), "body{}");

    struct stat s;
    assert_int_equal(fstatat(fd, "index.html", &s, 0), 0);
    assert_int_equal(s.st_mode & 07777, 0640);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_gid, GID);
    assert_int_equal(s.st_mtime, 1500000000);
    assert_int_equal(s.st_nlink, 2);   /* "same" is the same file */
    assert_int_equal(fstatat(fd, "bin/run.sh", &s, 0), 0);
    assert_int_equal(s.st_mode & 07777, 0750);   /* executable kept, setuid dropped */
    assert_int_equal(fstatat(fd, "css", &s, 0), 0);
    assert_int_equal(s.st_mode & 07777, 02750);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_mtime, 1500000001);    /* kept although css/site.css came later */
    assert_int_equal(fstatat(fd, "link", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISLNK(s.st_mode));
    assert_int_equal(s.st_uid, UID);
    close(fd);
    rm_rf(dir);
}

static void test_formats(void **state)
{
    static const char *const formats[] = { "zip", "tar.gz", "tar.zst", "tar.xz", "tar" };
    const struct ent ents[] = { { "a/b.txt", 'f', "bee" }, { "c.txt", 'f', "sea" } };
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        char dir[64];
        int fd;
        struct error err;
        int r = run(formats[i], ents, ARRAY_SIZE(ents), NULL, &err, dir, &fd);
        if (r != 0)
            fail_msg("%s: %s", formats[i], err.message);
        assert_string_equal(slurp(fd, "a/b.txt"), "bee");
        assert_string_equal(slurp(fd, "c.txt"), "sea");
        close(fd);
        rm_rf(dir);
    }
}

static void test_not_archive(void **state)
{
    char dir[64];
    int fd = tmpdir(dir);
    int archive = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_int_equal(write(archive, "hello, this is not an archive at all\n", 37), 37);
    lseek(archive, 0, SEEK_SET);
    struct error err = { 0 };
    assert_int_equal(upload_extract(fd, archive, NULL, UID, GID, &err, NULL), -EBADMSG);
    assert_non_null(strstr(err.message, "not a zip or tar archive"));
    close(archive);
    close(fd);
    rm_rf(dir);

    const struct ent only_root[] = { { "./", 'd' } };
    expect_refused("tar", only_root, 1, NULL, -EINVAL, "the archive is empty");
}

/* Damaged data is refused, not served: a zip whose stored bytes no longer match
 * their CRC (libarchive says so with a warning on the last block). */
static void test_damaged_refused(void **state)
{
    const struct ent ents[] = { { "index.html", 'f', "<h1>the real page</h1>" } };
    int archive = build("zip-stored", ents, ARRAY_SIZE(ents));
    char buf[4096];
    ssize_t n = pread(archive, buf, sizeof(buf), 0);
    assert_true(n > 0);
    char *p = memmem(buf, (size_t)n, "real", 4);
    assert_non_null(p);
    assert_int_equal(pwrite(archive, "fake", 4, p - buf), 4);
    char dir[64];
    int fd = tmpdir(dir);
    struct error err = { 0 };
    int r = upload_extract(fd, archive, NULL, UID, GID, &err, NULL);
    if (r != -EBADMSG || !strstr(err.message, "entry 'index.html' is damaged"))
        fail_msg("expected -EBADMSG \"entry 'index.html' is damaged\", got %d \"%s\"", r, err.message);
    close(archive);
    close(fd);
    rm_rf(dir);
}

/* Names quoted into messages: control characters masked, long names cut with
 * "...", and never inside a UTF-8 character (a cut one shows as U+FFFD in the
 * API's JSON and as garbage in a terminal). */
static void test_name_quote(void **state)
{
    char out[UPLOAD_QUOTE_MAX];
    assert_string_equal(upload_name_quote("a\033[2Jb", out), "a?[2Jb");
    for (size_t prefix = 0; prefix < 4; prefix++) {
        char name[400];
        size_t o = 0;
        for (; o < prefix; o++)
            name[o] = 'a';
        while (o + 2 < sizeof(name)) {
            memcpy(name + o, "\xc3\xa9", 2);   /* é */
            o += 2;
        }
        name[o] = 0;
        const char *q = upload_name_quote(name, out);
        size_t len = strlen(q);
        assert_true(len < UPLOAD_QUOTE_MAX);
        assert_string_equal(q + len - 3, "...");
        /* What precedes "..." is whole characters: the prefix, then pairs. */
        size_t body = len - 3;
        assert_true(body > prefix);
        assert_int_equal((body - prefix) % 2, 0);
        assert_memory_equal(q, name, body);
    }
}

static void test_paths_refused(void **state)
{
    const struct ent abs[] = { { "/etc/evil", 'f', "x" } };
    expect_refused("tar", abs, 1, NULL, -EINVAL, "entry '/etc/evil' has an absolute path");
    const struct ent climb[] = { { "a/../../x", 'f', "x" } };
    expect_refused("tar", climb, 1, NULL, -EINVAL, "entry 'a/../../x' climbs out of the site");
    const struct ent inner[] = { { "a/../b", 'f', "x" } };
    expect_refused("zip", inner, 1, NULL, -EINVAL, "entry 'a/../b' has a '..' in its path");
    const struct ent ctl[] = { { "bad\033[2Jname", 'f', "x" } };
    expect_refused("tar", ctl, 1, NULL, -EINVAL, "entry 'bad?[2Jname' has a control character");
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    const struct ent lng[] = { { longname, 'f', "x" } };
    expect_refused("tar", lng, 1, NULL, -EINVAL, "has a name longer than 255 bytes");
}

static void test_types_refused(void **state)
{
    const struct ent dev[] = { { "ok.html", 'f', "x" }, { "null", 'c' } };
    expect_refused("tar", dev, 2, NULL, -EINVAL, "entry 'null' is a device");
    const struct ent fifo[] = { { "pipe", 'p' } };
    expect_refused("tar", fifo, 1, NULL, -EINVAL, "entry 'pipe' is a fifo");
    const struct ent retype[] = { { "x", 'd' }, { "x", 'f', "now a file" } };
    expect_refused("tar", retype, 2, NULL, -EINVAL, "entry 'x' appears twice, first as a directory, then as a file");
    const struct ent under_file[] = { { "x", 'f', "file" }, { "x/y", 'f', "inside" } };
    expect_refused("tar", under_file, 2, NULL, -EINVAL, "entry 'x/y' needs 'x' to be a directory");
}

static void test_links_refused(void **state)
{
    const struct ent abs[] = { { "etc", 'l', "/etc" } };
    expect_refused("tar", abs, 1, NULL, -EINVAL, "symlink 'etc' points to the absolute path '/etc'");
    const struct ent climb[] = { { "d/up", 'l', "../../outside" } };
    expect_refused("tar", climb, 1, NULL, -EINVAL, "symlink 'd/up' -> '../../outside' climbs out of the site");
    /* Each link looks fine alone; together they leave the tree. */
    const struct ent chain[] = { { "d/s", 'l', ".." }, { "d/x", 'l', "s/../.." } };
    expect_refused("tar", chain, 2, NULL, -EINVAL, "symlink 'd/x' leads out of the site");
    /* The traversal: a link the archive made, then a write through it. */
    const struct ent through[] = { { "real", 'd' }, { "a", 'l', "real" }, { "a/passwd", 'f', "root::0:0" } };
    expect_refused("tar", through, 3, NULL, -EINVAL, "entry 'a/passwd' would be written through the symlink 'a'");
    const struct ent hard_out[] = { { "pw", 'h', "/etc/passwd" } };
    expect_refused("tar", hard_out, 1, NULL, -EINVAL, "hard link 'pw' points to '/etc/passwd', outside the site");
    const struct ent hard_up[] = { { "pw", 'h', "../../etc/passwd" } };
    expect_refused("tar", hard_up, 1, NULL, -EINVAL, "hard link 'pw' points to '../../etc/passwd', outside the site");
    const struct ent hard_missing[] = { { "pw", 'h', "later.txt" }, { "later.txt", 'f', "x" } };
    expect_refused("tar", hard_missing, 2, NULL, -EINVAL,
                   "hard link 'pw' points to 'later.txt', which is not a file the archive holds before it");
    const struct ent hard_to_link[] = { { "l", 'l', "x" }, { "pw", 'h', "l" } };
    expect_refused("tar", hard_to_link, 2, NULL, -EINVAL, "hard link 'pw' points to 'l', which is not a file");
}

static void test_links_allowed(void **state)
{
    const struct ent ents[] = {
        { "a/b/c.txt", 'f', "deep" }, { "a/b/up", 'l', "../../a/b/c.txt" }, { "dangling", 'l', "nothing/here" },
        { "loop1", 'l', "loop2" }, { "loop2", 'l', "loop1" }, { "dot", 'l', "." },
    };
    char dir[64];
    int fd;
    struct error err;
    int r = run("tar", ents, ARRAY_SIZE(ents), NULL, &err, dir, &fd);
    if (r != 0)
        fail_msg("%s", err.message);
    assert_string_equal(slurp(fd, "a/b/c.txt"), "deep");
    char target[64] = "";
    assert_true(readlinkat(fd, "a/b/up", target, sizeof(target) - 1) > 0);
    assert_string_equal(target, "../../a/b/c.txt");
    close(fd);
    rm_rf(dir);
}

static void test_limits(void **state)
{
    struct upload_limits lim;
    upload_limits_default(&lim);
    assert_int_equal(lim.max_total_bytes, 1ULL << 30);
    assert_int_equal(lim.max_entries, 100000);

    assert_int_equal(lim.max_depth, 128);

    /* Every entry's parent is walked from the root, so nesting multiplies the
     * cost of each entry: a deep path is refused, not walked. */
    static char deep_path[2 * 200 + 8];
    size_t o = 0;
    for (int i = 0; i < 200; i++)
        o += (size_t)snprintf(deep_path + o, sizeof(deep_path) - o, "d/");
    snprintf(deep_path + o, sizeof(deep_path) - o, "f");
    const struct ent too_deep[] = { { deep_path, 'f', "x" } };
    expect_refused("tar", too_deep, 1, &lim, -EINVAL, "is nested more than 128 levels deep");
    lim.max_depth = 2;
    const struct ent three[] = { { "a/b/c.txt", 'f', "x" } };
    expect_refused("zip", three, 1, &lim, -EINVAL, "entry 'a/b/c.txt' is nested more than 2 levels deep");
    const struct ent two[] = { { "a/b.txt", 'f', "x" }, { "a/c/", 'd' } };
    char dir[64];
    int fd;
    struct error err;
    if (run("zip", two, ARRAY_SIZE(two), &lim, &err, dir, &fd) != 0)
        fail_msg("%s", err.message);
    close(fd);
    rm_rf(dir);
    upload_limits_default(&lim);

    lim.max_entries = 3;
    const struct ent many[] = { { "1", 'f', "1" }, { "2", 'f', "2" }, { "3", 'f', "3" }, { "4", 'f', "4" } };
    expect_refused("zip", many, 4, &lim, -E2BIG, "the archive has more than 3 entries");
    /* Directories made implicitly for a deep path count too. */
    const struct ent deep[] = { { "a/b/c/d", 'f', "x" } };
    expect_refused("tar", deep, 1, &lim, -E2BIG, "more than 3 entries");

    upload_limits_default(&lim);
    lim.max_entry_bytes = 1000;
    const struct ent big[] = { { "small", 'f', "x" }, { "big", 'f', NULL, 0, 1001 } };
    expect_refused("tar", big, 2, &lim, -EFBIG, "entry 'big' is larger than");

    upload_limits_default(&lim);
    lim.max_total_bytes = 100000;
    const struct ent total[] = { { "a", 'f', NULL, 0, 60000 }, { "b", 'f', NULL, 0, 60000 } };
    expect_refused("tar", total, 2, &lim, -EFBIG, "the archive unpacks to more than");

    /* A zip bomb: 64 MiB of zeros deflate to ~64 KiB. The default ratio stops it
     * while streaming, long before 64 MiB are written. */
    const struct ent bomb[] = { { "index.html", 'f', "x" }, { "zeros.bin", 'f', NULL, 0, 64ULL << 20 } };
    expect_refused("zip", bomb, 2, NULL, -EFBIG, "refused as a likely zip bomb");
    expect_refused("tar.gz", bomb, 2, NULL, -EFBIG, "expands more than 100 times");
    /* Under the floor, a high ratio is fine (small text compresses well). */
    const struct ent small[] = { { "zeros.bin", 'f', NULL, 0, 4ULL << 20 } };
    assert_int_equal(run("zip", small, 1, NULL, &err, dir, &fd), 0);
    close(fd);
    rm_rf(dir);
}

/* A sparse file ending in a hole keeps its full size: the hole reads as zeros,
 * it is not cut off where the data ends. The hole still counts against limits. */
static void test_sparse_trailing_hole(void **state)
{
    const struct ent ents[] = { { "disk.img", 's', "data", 0, 1 << 20 } };
    char dir[64];
    int fd;
    struct error err;
    int r = run("tar", ents, ARRAY_SIZE(ents), NULL, &err, dir, &fd);
    if (r != 0)
        fail_msg("%s", err.message);
    struct stat st;
    assert_int_equal(fstatat(fd, "disk.img", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_size, 1 << 20);
    assert_string_equal(slurp(fd, "disk.img"), "data");
    close(fd);
    rm_rf(dir);

    struct upload_limits lim;
    upload_limits_default(&lim);
    lim.max_entry_bytes = 1000;
    expect_refused("tar", ents, ARRAY_SIZE(ents), &lim, -EFBIG, "entry 'disk.img' is larger than");
}

/* Finder's __MACOSX/ tree is read past, not written, but still metered: a bomb
 * hidden there is a bomb all the same. A name that only starts alike is content. */
static void test_macos_metadata(void **state)
{
    const struct ent ents[] = { { "__MACOSX/", 'd' }, { "__MACOSX/site/._index.html", 'f', "xattrs" },
                                { "__MACOSX/._link", 'l', "../../../etc" }, { "site/index.html", 'f', "page" },
                                { "__MACOSXfoo/a.txt", 'f', "kept" } };
    char dir[64];
    int fd;
    struct error err;
    if (run("zip", ents, ARRAY_SIZE(ents), NULL, &err, dir, &fd) != 0)
        fail_msg("%s", err.message);
    struct stat st;
    assert_int_equal(fstatat(fd, "__MACOSX", &st, AT_SYMLINK_NOFOLLOW), -1);
    assert_string_equal(slurp(fd, "site/index.html"), "page");
    assert_string_equal(slurp(fd, "__MACOSXfoo/a.txt"), "kept");
    close(fd);
    rm_rf(dir);

    const struct ent bomb[] = { { "index.html", 'f', "x" }, { "__MACOSX/._zeros", 'f', NULL, 0, 64ULL << 20 } };
    expect_refused("tar.gz", bomb, 2, NULL, -EFBIG, "refused as a likely zip bomb");
}

/* A GNU sparse map is parsed, every extent a node in memory, while libarchive
 * reads the entry's header, before any data is counted: a few KiB of gzip can
 * hold millions of extents. The header is refused once it unpacks past its
 * limit; the extents here are honest (increasing), just far too many. */
static void sparse_map_bomb(bool gzip)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gzip)
        assert_true(archive_write_add_filter_gzip(a) >= ARCHIVE_WARN);
    assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, "holes.bin");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    enum { EXTENTS = 600000 };
    archive_entry_set_size(ae, 2 * EXTENTS);
    for (int i = 0; i < EXTENTS; i++)
        archive_entry_sparse_add_entry(ae, 2 * (la_int64_t)i, 1);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    static const char pattern[2] = { 'x', 0 };   /* one data byte, one hole byte */
    for (int i = 0; i < EXTENTS; i++)
        assert_int_equal(archive_write_data(a, pattern, 2), 2);
    archive_entry_free(ae);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);

    char dir[64];
    int tree = tmpdir(dir);
    struct error err = { 0 };
    int r = upload_extract(tree, fd, NULL, UID, GID, &err, NULL);
    close(fd);
    close(tree);
    rm_rf(dir);
    if (r != -EFBIG || !strstr(err.message, "headers unpack to more than 4M"))
        fail_msg("%s: expected -EFBIG \"headers unpack to more than 4M\", got %d \"%s\"", gzip ? "tar.gz" : "tar",
                 r, err.message);
}

static void test_sparse_map_bomb(void **state)
{
    sparse_map_bomb(true);
    /* Plain too: the map costs more in memory than it takes in the archive. */
    sparse_map_bomb(false);
}

static void test_duplicates(void **state)
{
    const struct ent ents[] = { { "a.txt", 'f', "first" }, { "d", 'd' }, { "a.txt", 'f', "second" }, { "d", 'd' } };
    char dir[64];
    int fd;
    struct error err;
    assert_int_equal(run("tar", ents, ARRAY_SIZE(ents), NULL, &err, dir, &fd), 0);
    assert_string_equal(slurp(fd, "a.txt"), "second");
    close(fd);
    rm_rf(dir);

    /* The stats say what is on disk, not how many entries were written: a file
     * replaced is no longer counted, its bytes neither unless a hard link keeps
     * them ("tar -r" appends a newer copy of a file). */
    const struct ent again[] = { { "a.txt", 'f', "first" }, { "a.txt", 'f', "second!" }, { "l", 'l', "a.txt" },
                                 { "l", 'l', "a.txt" }, { "h", 'h', "a.txt" }, { "a.txt", 'f', "third" } };
    int archive = build("tar", again, ARRAY_SIZE(again));
    fd = tmpdir(dir);
    struct upload_stats st;
    err = (struct error){ 0 };
    if (upload_extract(fd, archive, NULL, UID, GID, &err, &st) != 0)
        fail_msg("%s", err.message);
    close(archive);
    assert_string_equal(slurp(fd, "a.txt"), "third");
    assert_string_equal(slurp(fd, "h"), "second!");
    assert_int_equal(st.files, 2);
    assert_int_equal(st.symlinks, 1);
    assert_int_equal(st.bytes, 5 + 7);
    close(fd);
    rm_rf(dir);
}

/* A site directory with public/ holding index.html, owned as sites makes it. */
static int make_site(char dir[static 64])
{
    int fd = tmpdir(dir);
    assert_int_equal(ensure_dir(fd, "public", UID, GID, 02750), 0);
    int pub = openat(fd, "public", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int f = openat(pub, "index.html", O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    assert_int_equal(write(f, "old", 3), 3);
    close(f);
    close(pub);
    return fd;
}

/* The name of a staging directory left in site, or NULL. */
static const char *find_staging(int site)
{
    static char name[NAME_MAX + 1];
    /* A fresh open, not a dup: a dup shares the offset an earlier readdir of
     * site left at the end, and would list nothing. */
    int fd = openat(site, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    const char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        if (str_startswith(de->d_name, UPLOAD_STAGING_PREFIX))
            found = strcpy(name, de->d_name);
    closedir(d);
    return found;
}

static void assert_no_staging(int site)
{
    const char *left = find_staging(site);
    if (left)
        fail_msg("staging debris left: %s", left);
}

/* ---- the unpacker ---- */

/* Runs in the unpacker: every confinement it should be under, checked from inside.
 * A failed check is the error (cmocka cannot assert in a child). */
static int probe_confinement(int tree_fd, int archive_fd, void *data, struct error *err,
                             struct upload_stats *ret_stats)
{
    (void)data;
    /* The archive is read-only here, whatever the caller's fd was; at its offset. */
    char c;
    if (write(archive_fd, "x", 1) >= 0 || errno != EBADF)
        return error_set(err, -EPERM, "the archive is writable: %m");
    if (read(archive_fd, &c, 1) != 1 || c != 'b')
        return error_set(err, -EPERM, "the archive is not read from its offset");
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || ru != UID || eu != UID || su != UID)
        return error_set(err, -EPERM, "uids %u %u %u", ru, eu, su);
    if (getresgid(&rg, &eg, &sg) < 0 || rg != UID || eg != UID || sg != UID)
        return error_set(err, -EPERM, "gids %u %u %u", rg, eg, sg);
    if (getgroups(0, NULL) != 0)
        return error_set(err, -EPERM, "supplementary groups kept");
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return error_set(err, -EPERM, "no_new_privs not set");
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return error_set(err, -EPERM, "dumpable");
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
            return error_set(err, -EPERM, "capability %d left in the bounding set", cap);
    int fds = 0;
    for (int fd = 0; fd < 1024; fd++)
        fds += fcntl(fd, F_GETFD) >= 0;
    if (fds > 6)
        return error_set(err, -EPERM, "%d fds open", fds);
    /* Nothing is found by path: the root is the staging directory, root's 0700. */
    if (open("/etc/passwd", O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
        return error_set(err, -EPERM, "open /etc/passwd: %m");
    if (mkdir("/tmp", 0700) == 0 || errno != EACCES)
        return error_set(err, -EPERM, "mkdir /tmp: %m");
    /* What the seccomp filter refuses, with the errno it refuses them with. */
    errno = 0;
    if (socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 || errno != EPERM)
        return error_set(err, -EPERM, "socket: %m");
    if (mknodat(tree_fd, "fifo", S_IFIFO | 0600, 0) == 0 || errno != EPERM)
        return error_set(err, -EPERM, "mknod: %m");
    if (execve("/bin/true", (char *[]){ "true", NULL }, (char *[]){ NULL }) == 0 || errno != EPERM)
        return error_set(err, -EPERM, "execve: %m");
    if (syscall(SYS_fork) >= 0 || errno != EPERM)
        return error_set(err, -EPERM, "fork: %m");
    if (setuid(0) == 0)
        return error_set(err, -EPERM, "setuid(0) worked");
    /* What it makes is its own, with the tree's group; a file past the size
     * limit is cut by the kernel. */
    int fd = openat(tree_fd, "f", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return error_set(err, -errno, "create: %m");
    char buf[64] = { 0 };
    ssize_t n = write(fd, buf, sizeof(buf));
    close(fd);
    if (n != 16)
        return error_set(err, -EPERM, "wrote %zd bytes past RLIMIT_FSIZE", n);
    if (mkdirat(tree_fd, "d", 0750) < 0)
        return error_set(err, -errno, "mkdir: %m");
    *ret_stats = (struct upload_stats){ .files = 1, .dirs = 1 };
    return 0;
}

static void test_unpacker_confined(void **state)
{
    char dir[64];
    int staging = tmpdir(dir);
    int tree = upload_tree_make(staging, "tree", UID, GID);
    assert_true(tree >= 0);
    struct upload_limits lim;
    upload_limits_default(&lim);
    lim.max_entry_bytes = 16;
    struct error err = { 0 };
    struct upload_stats st = { 0 };
    int archive = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_int_equal(write(archive, "ab", 2), 2);
    assert_int_equal(lseek(archive, 1, SEEK_SET), 1);
    int r = upload_unpacker_run(staging, tree, archive, UID, UID, &lim, probe_confinement, NULL, &err, &st);
    close(archive);
    if (r != 0)
        fail_msg("%s", err.message);
    assert_int_equal(st.files, 1);
    struct stat s;
    assert_int_equal(fstatat(tree, "f", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_gid, GID);   /* the setgid tree's, not the unpacker's */
    assert_int_equal(s.st_size, 16);
    assert_int_equal(fstatat(tree, "d", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(s.st_gid, GID);
    assert_int_equal(s.st_mode & 07777, 02750);   /* setgid inherited */
    assert_int_equal(fstatat(tree, ".", &s, 0), 0);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_mode & 07777, 02750);
    close(tree);
    close(staging);
    rm_rf(dir);
}

static int die_quietly(int tree_fd, int archive_fd, void *data, struct error *err, struct upload_stats *ret_stats)
{
    (void)tree_fd, (void)archive_fd, (void)err, (void)ret_stats;
    if (data)
        raise(SIGKILL);
    _exit(3);
}

static void test_unpacker_failures(void **state)
{
    char dir[64];
    int staging = tmpdir(dir);
    int tree = upload_tree_make(staging, "tree", UID, GID);
    struct error err = { 0 };
    /* Not a regular file: passed on as it is. */
    int archive = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* Never as root, never as "no change". */
    assert_int_equal(upload_unpacker_run(staging, tree, archive, 0, UID, NULL, die_quietly, NULL, &err, NULL), -EINVAL);
    assert_int_equal(upload_unpacker_run(staging, tree, archive, UID, 0, NULL, die_quietly, NULL, &err, NULL), -EINVAL);
    assert_int_equal(upload_unpacker_run(staging, tree, archive, (uid_t)-1, UID, NULL, die_quietly, NULL, &err, NULL), -EINVAL);
    assert_int_equal(upload_unpacker_creds_check(UID, UID), 0);
    /* An unpacker that ends without a report, or is killed. */
    assert_int_equal(upload_unpacker_run(staging, tree, archive, UID, UID, NULL, die_quietly, NULL, &err, NULL), -EIO);
    assert_string_equal(err.message, "the unpacking process ended without a result (exit status 3)");
    assert_int_equal(upload_unpacker_run(staging, tree, archive, UID, UID, NULL, die_quietly, "kill", &err, NULL), -EIO);
    assert_string_equal(err.message, "the unpacking process was killed by signal 9 (Killed)");
    close(archive);
    close(tree);
    close(staging);
    rm_rf(dir);
}


static void test_site_replace(void **state)
{
    char dir[64];
    int site = make_site(dir);
    const struct ent ents[] = { { "mysite/", 'd' }, { "mysite/new.html", 'f', "new" }, { "mysite/s", 'l', "new.html" } };
    int archive = build("zip", ents, ARRAY_SIZE(ents));
    struct error err = { 0 };
    struct upload_stats st;
    int r = upload_site_replace(site, archive, NULL, UID, UID, &err, &st);
    if (r != 0)
        fail_msg("%s", err.message);
    close(archive);
    assert_int_equal(st.files, 1);
    /* The single top folder is unwrapped; the old file is gone. */
    assert_string_equal(slurp(site, "public/new.html"), "new");
    assert_null(slurp(site, "public/index.html"));
    assert_null(slurp(site, "public/mysite/new.html"));
    struct stat s;
    assert_int_equal(fstatat(site, "public", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(s.st_mode & 07777, 02750);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_gid, GID);
    /* Made by the unpacker as UID; the group from the setgid tree. */
    assert_int_equal(fstatat(site, "public/new.html", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_gid, GID);
    assert_int_equal(s.st_mode & 07777, 0640);
    assert_int_equal(fstatat(site, "public/s", &s, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(s.st_uid, UID);
    assert_int_equal(s.st_gid, GID);
    assert_no_staging(site);
    close(site);
    rm_rf(dir);
}

static void test_site_replace_unpacker_cannot_start(void **state)
{
    char dir[64];
    int site = make_site(dir);
    const struct ent ents[] = { { "new.html", 'f', "new" } };
    int archive = build("zip", ents, ARRAY_SIZE(ents));
    struct error err = { 0 };
    setenv("BERTH_TEST_UNPACKER_FORK_FAIL", "1", 1);
    int r = upload_site_replace(site, archive, NULL, UID, UID, &err, NULL);
    unsetenv("BERTH_TEST_UNPACKER_FORK_FAIL");
    assert_int_equal(r, -EAGAIN);
    assert_string_equal(err.message, "cannot start the unpacking process: Resource temporarily unavailable");
    assert_string_equal(slurp(site, "public/index.html"), "old");
    assert_null(slurp(site, "public/new.html"));
    assert_no_staging(site);
    /* Root is refused as the unpacker's user before anything is made. */
    assert_int_equal(upload_site_replace(site, archive, NULL, 0, 0, &err, NULL), -EINVAL);
    assert_no_staging(site);
    close(archive);
    close(site);
    rm_rf(dir);
}


static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (one level), joined with '|'. */
static void list_names(int dirfd, const char *sub, char *out, size_t size)
{
    int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    char *names[16];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && n < 16)
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strncat(out, names[i], size - strlen(out) - 2);
        strcat(out, "|");
        free(names[i]);
    }
}

/* The unpacker's root holds no locale or charset files (its root is the staging
 * directory): names in UTF-8 and in other encodings come out as when extracted in
 * this process. */
/* Raw archives, names as bytes with no charset conversion (libarchive's writer
 * refuses names the C locale cannot convert). */
static void put_le(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc32_of(const char *p, size_t n)
{
    uint32_t c = 0xffffffff;
    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned char)p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320 : c >> 1;
    }
    return ~c;
}

/* A ustar of regular files named names[i], each holding its own name. */
static int raw_tar(const char *const *names, size_t n)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char h[512] = { 0 }, data[512] = { 0 };
        size_t len = strlen(names[i]);
        memcpy(h, names[i], len);
        memcpy(h + 100, "0000644", 8);
        memcpy(h + 108, "0001750", 8);
        memcpy(h + 116, "0001750", 8);
        snprintf((char *)h + 124, 12, "%011o", (unsigned)len);
        snprintf((char *)h + 136, 12, "%011o", 1500000000u);
        h[156] = '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (size_t k = 0; k < 512; k++)
            sum += h[k];
        snprintf((char *)h + 148, 8, "%06o", sum);
        memcpy(data, names[i], len);
        assert_int_equal(write(fd, h, 512), 512);
        assert_int_equal(write(fd, data, 512), 512);
    }
    unsigned char end[1024] = { 0 };
    assert_int_equal(write(fd, end, sizeof(end)), (ssize_t)sizeof(end));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* A stored zip of the same; flags 0x800 marks names UTF-8, 0 leaves them to the
 * reader (CP437 by the format's rules). */
static int raw_zip(const char *const *names, size_t n, uint16_t flags)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    unsigned char cd[4096];
    size_t cd_len = 0;
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t len = (uint16_t)strlen(names[i]);
        uint32_t crc = crc32_of(names[i], len);
        unsigned char h[30] = { 0 };
        put_le(h, 0x04034b50, 4);
        put_le(h + 4, 20, 2);
        put_le(h + 6, flags, 2);
        put_le(h + 10, 0x6000, 2);   /* 12:00 */
        put_le(h + 12, 0x50b1, 2);   /* 2020-05-17 */
        put_le(h + 14, crc, 4);
        put_le(h + 18, len, 4);
        put_le(h + 22, len, 4);
        put_le(h + 26, len, 2);
        assert_int_equal(write(fd, h, 30), 30);
        assert_int_equal(write(fd, names[i], len), len);
        assert_int_equal(write(fd, names[i], len), len);
        unsigned char *c = cd + cd_len;
        memset(c, 0, 46);
        put_le(c, 0x02014b50, 4);
        put_le(c + 4, 20, 2);
        put_le(c + 6, 20, 2);
        put_le(c + 8, flags, 2);
        memcpy(c + 12, h + 10, 16);   /* time, date, crc, sizes */
        put_le(c + 28, len, 2);
        put_le(c + 38, 0644u << 16, 4);
        put_le(c + 42, off, 4);
        memcpy(c + 46, names[i], len);
        cd_len += 46 + len;
        off += 30 + 2 * (uint32_t)len;
    }
    unsigned char e[22] = { 0 };
    put_le(e, 0x06054b50, 4);
    put_le(e + 8, (uint32_t)n, 2);
    put_le(e + 10, (uint32_t)n, 2);
    put_le(e + 12, (uint32_t)cd_len, 4);
    put_le(e + 16, off, 4);
    assert_int_equal(write(fd, cd, cd_len), (ssize_t)cd_len);
    assert_int_equal(write(fd, e, 22), 22);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void test_unpacker_names_as_in_process(void **state)
{
    /* Valid UTF-8, Latin-1, CP437 high bytes, ASCII. A zip that flags its names
     * UTF-8 is refused in the C locale berthd runs in ("an entry has no name":
     * libarchive cannot convert them), in this process and in the unpacker alike. */
    static const char *const names[] = { "caf\xc3\xa9.html", "plain.txt", "\xe9t\xe9.html", "\x82\x8a.txt" };
    for (int kind = 0; kind < 3; kind++) {
        int archive = kind == 0 ? raw_tar(names, ARRAY_SIZE(names))
                      : kind == 1 ? raw_zip(names, 2, 0x800) : raw_zip(names, ARRAY_SIZE(names), 0);
        char dir[64], expect[1024] = "", got[1024] = "", msg[sizeof(((struct error *)0)->message)];
        int tree = tmpdir(dir);
        struct error err = { 0 };
        int r1 = upload_extract(tree, archive, NULL, UID, GID, &err, NULL);
        snprintf(msg, sizeof(msg), "%s", err.message);
        if (r1 == 0)
            list_names(tree, ".", expect, sizeof(expect));
        close(tree);
        rm_rf(dir);
        if (kind != 1 && r1 != 0)
            fail_msg("archive %d, in this process: %s", kind, msg);

        assert_int_equal(lseek(archive, 0, SEEK_SET), 0);
        int site = make_site(dir);
        err = (struct error){ 0 };
        int r2 = upload_site_replace(site, archive, NULL, UID, UID, &err, NULL);
        assert_int_equal(r2, r1);
        if (r2 == 0) {
            list_names(site, "public", got, sizeof(got));
            assert_string_equal(got, expect);
            assert_non_null(strstr(got, "plain.txt|"));
        } else {
            assert_string_equal(err.message, msg);
        }
        close(site);
        close(archive);
        rm_rf(dir);
    }
}

static void test_site_replace_refused(void **state)
{
    char dir[64];
    int site = make_site(dir);
    /* Inside the wrapper "../x" stays in; unwrapped it would leave public/. */
    const struct ent ents[] = { { "w/x", 'f', "x" }, { "w/a", 'l', "../w/x" } };
    int archive = build("tar", ents, ARRAY_SIZE(ents));
    struct error err = { 0 };
    assert_int_equal(upload_site_replace(site, archive, NULL, UID, UID, &err, NULL), -EINVAL);
    assert_non_null(strstr(err.message, "symlink 'a' -> '../w/x' climbs out of the site"));
    close(archive);
    assert_string_equal(slurp(site, "public/index.html"), "old");
    assert_no_staging(site);

    /* The same, dangling: resolving it finds nothing (ENOENT before the ".."),
     * so only the lexical rule, applied to the unwrapped path, can see it leave. */
    const struct ent dangling[] = { { "w/x", 'f', "x" }, { "w/a", 'l', "nothere/../../secret" } };
    archive = build("tar", dangling, ARRAY_SIZE(dangling));
    err = (struct error){ 0 };
    assert_int_equal(upload_site_replace(site, archive, NULL, UID, UID, &err, NULL), -EINVAL);
    if (!strstr(err.message, "symlink 'a' -> 'nothere/../../secret' climbs out of the site"))
        fail_msg("got \"%s\"", err.message);
    close(archive);
    assert_string_equal(slurp(site, "public/index.html"), "old");
    assert_no_staging(site);

    const struct ent bad[] = { { "good.html", 'f', "x" }, { "/abs", 'f', "x" } };
    archive = build("tar.gz", bad, ARRAY_SIZE(bad));
    assert_int_equal(upload_site_replace(site, archive, NULL, UID, UID, &err, NULL), -EINVAL);
    close(archive);
    assert_string_equal(slurp(site, "public/index.html"), "old");
    assert_null(slurp(site, "public/good.html"));
    assert_no_staging(site);
    close(site);
    rm_rf(dir);
}

/* A site's program can nest directories in public/ without limit. Replacing
 * that public/ must still remove the old tree, however deep, without needing an
 * fd (or a stack frame) per level: here 1500 levels under a 256-fd limit. */
static void test_site_replace_deep_old_tree(void **state)
{
    char dir[64];
    int site = make_site(dir);
    int fd = openat(site, "public", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < 1500; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(sub >= 0);
        close(fd);
        fd = sub;
    }
    close(fd);

    struct rlimit saved, low = { .rlim_cur = 256 };
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low.rlim_max = saved.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    const struct ent ents[] = { { "new.html", 'f', "new" } };
    int archive = build("tar", ents, ARRAY_SIZE(ents));
    struct error err = { 0 };
    int r = upload_site_replace(site, archive, NULL, UID, UID, &err, NULL);
    close(archive);
    int removed = upload_site_cleanup(site);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    if (r != 0)
        fail_msg("%s", err.message);
    assert_string_equal(slurp(site, "public/new.html"), "new");
    assert_int_equal(removed, 0);
    assert_no_staging(site);
    close(site);
    rm_rf(dir);
}

/* The disk fills while the new tree is written: the upload fails with ENOSPC
 * (the API's 507), public/ is the old one and the partial tree is gone. The site
 * lives on a 1 MiB tmpfs; the archive (2 MiB that do not compress) elsewhere. */
static void test_site_replace_disk_full(void **state)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/test-upload-XXXXXX");
    assert_non_null(mkdtemp(dir));
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") < 0) {
        int e = errno;
        rmdir(dir);
        if (getenv("BERTH_MUST_WORK") && streq(getenv("BERTH_MUST_WORK"), "1"))
            fail_msg("cannot mount a tmpfs (BERTH_MUST_WORK=1): %s", strerror(e));
        skip();
    }
    int site = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(ensure_dir(site, "public", UID, GID, 02750), 0);
    int f = openat(site, "public/index.html", O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    assert_int_equal(write(f, "old", 3), 3);
    close(f);

    static char noise[2 << 20];
    assert_int_equal(getrandom(noise, sizeof(noise), 0), (ssize_t)sizeof(noise));
    noise[sizeof(noise) - 1] = 0;
    for (size_t i = 0; i < sizeof(noise) - 1; i++)
        noise[i] = noise[i] ? noise[i] : 'z';   /* the builder takes a C string */
    const struct ent ents[] = { { "small.html", 'f', "new" }, { "big.bin", 'f', noise } };
    int archive = build("tar", ents, ARRAY_SIZE(ents));
    struct error err = { 0 };
    int r = upload_site_replace(site, archive, NULL, UID, UID, &err, NULL);
    close(archive);
    bool ok = r == -ENOSPC && strstr(err.message, "cannot write 'big.bin': No space left on device");
    char *old = slurp(site, "public/index.html");
    bool intact = old && streq(old, "old") && !slurp(site, "public/small.html");
    const char *left = find_staging(site);
    close(site);
    assert_int_equal(umount(dir), 0);
    rmdir(dir);
    if (!ok)
        fail_msg("expected -ENOSPC \"cannot write 'big.bin': No space left on device\", got %d \"%s\"", r,
                 err.message);
    assert_true(intact);
    if (left)
        fail_msg("staging debris left: %s", left);
}

static void test_site_cleanup(void **state)
{
    char dir[64];
    int site = make_site(dir);
    assert_int_equal(mkdirat(site, ".upload-crashed", 0700), 0);
    assert_int_equal(mkdirat(site, ".upload-crashed/tree", 0700), 0);
    int f = openat(site, ".upload-crashed/tree/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    close(f);
    assert_int_equal(upload_site_cleanup(site), 1);
    assert_no_staging(site);
    assert_string_equal(slurp(site, "public/index.html"), "old");
    assert_int_equal(upload_site_cleanup(site), 0);
    /* The same fd again, after new debris: each call reads the directory from
     * its start, whatever an earlier reader of the fd left. */
    assert_int_equal(mkdirat(site, ".upload-later", 0700), 0);
    assert_int_equal(upload_site_cleanup(site), 1);
    assert_no_staging(site);
    close(site);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tar_tree),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_not_archive),
        cmocka_unit_test(test_damaged_refused),
        cmocka_unit_test(test_name_quote),
        cmocka_unit_test(test_paths_refused),
        cmocka_unit_test(test_types_refused),
        cmocka_unit_test(test_links_refused),
        cmocka_unit_test(test_links_allowed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sparse_trailing_hole),
        cmocka_unit_test(test_macos_metadata),
        cmocka_unit_test(test_sparse_map_bomb),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_unpacker_confined),
        cmocka_unit_test(test_unpacker_failures),
        cmocka_unit_test(test_site_replace),
        cmocka_unit_test(test_site_replace_unpacker_cannot_start),
        cmocka_unit_test(test_unpacker_names_as_in_process),
        cmocka_unit_test(test_site_replace_refused),
        cmocka_unit_test(test_site_replace_deep_old_tree),
        cmocka_unit_test(test_site_replace_disk_full),
        cmocka_unit_test(test_site_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
