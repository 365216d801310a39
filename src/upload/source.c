/* The bytes libarchive's tar and zip readers parse, metered.
 *
 * libarchive does real work while it reads an entry's header, before we see the
 * entry: a GNU sparse map, for one, becomes a list with a node per extent, and a
 * few KiB of gzip hold millions of extents (a 924-byte tar.zst took 140 MiB and
 * 2 s to read in the sanitized build; memory grows with the extents, without
 * limit). Data is metered as it is written; headers are metered here, by the
 * bytes handed to the format reader while it parses one header.
 *
 * For that count to be exact the decompression happens here, in a first reader
 * (the "raw" format with our filters) whose output blocks feed the second: its
 * read callback sees every decompressed block, each at most one filter buffer.
 * A plain archive is read from the fd directly, with seeking, so that zip can
 * use its central directory. */
#include "upload/upload-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>

#define SOURCE_BLOCK (64 * 1024)

struct upload_source {
    int fd;                     /* borrowed */
    struct archive *outer;      /* the decompressor, or NULL: the fd is read as is */
    uint64_t max_header_bytes;
    uint64_t fed;               /* bytes handed to the format reader */
    uint64_t header_start;      /* fed when the current header began */
    bool in_header;
    bool header_too_large;
    char buf[SOURCE_BLOCK];
};

static la_ssize_t source_read(struct archive *a, void *data, const void **ret_block)
{
    struct upload_source *s = data;
    /* Not for zip: its first header is the whole central directory, read by
     * seeking; each of its entries costs memory in proportion to its bytes, and
     * the upload size bounds those. (Before a format is chosen this is 0: the
     * bidders' reads are counted, and the zip bidder's seek does not stop the
     * count for a tar.) */
    bool zip = (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP;
    if (s->in_header && !zip && s->fed - s->header_start > s->max_header_bytes) {
        s->header_too_large = true;
        archive_set_error(a, EFBIG, "an entry's headers unpack to more than the limit");
        return -1;
    }
    size_t n;
    if (s->outer) {
        const void *block;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(s->outer, &block, &size, &offset);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN) {
            archive_set_error(a, archive_errno(s->outer) ?: EIO, "%s",
                              archive_error_string(s->outer) ?: "cannot decompress the archive");
            return -1;
        }
        *ret_block = block;
        n = size;
    } else {
        ssize_t k;
        do
            k = read(s->fd, s->buf, sizeof(s->buf));
        while (k < 0 && errno == EINTR);
        if (k < 0) {
            archive_set_error(a, errno, "cannot read the archive: %s", strerror(errno));
            return -1;
        }
        *ret_block = s->buf;
        n = (size_t)k;
    }
    s->fed += n;
    return (la_ssize_t)n;
}

static la_int64_t source_seek(struct archive *a, void *data, la_int64_t offset, int whence)
{
    struct upload_source *s = data;
    off_t pos = lseek(s->fd, (off_t)offset, whence);
    if (pos < 0) {
        archive_set_error(a, errno, "cannot seek in the archive: %s", strerror(errno));
        return ARCHIVE_FATAL;
    }
    return pos;
}

/* Opens the decompressor on fd and keeps it if the data is compressed; a plain
 * archive leaves s->outer NULL and fd where it was. */
static int open_outer(struct upload_source *s, struct error *err)
{
    off_t start = lseek(s->fd, 0, SEEK_CUR);
    struct archive *outer = archive_read_new();
    if (!outer)
        return error_set(err, -ENOMEM, "out of memory");
    /* Only the filters we promise: every other reader is attack surface no user
     * asked for. */
    if (archive_read_support_format_raw(outer) < ARCHIVE_WARN ||
        archive_read_support_filter_gzip(outer) < ARCHIVE_WARN ||
        archive_read_support_filter_zstd(outer) < ARCHIVE_WARN ||
        archive_read_support_filter_xz(outer) < ARCHIVE_WARN) {
        int r = error_set(err, -ENOTSUP, "libarchive lacks a needed filter: %s", archive_error_string(outer));
        archive_read_free(outer);
        return r;
    }
    struct archive_entry *e;
    int r = archive_read_open_fd(outer, s->fd, SOURCE_BLOCK);
    if (r >= ARCHIVE_WARN)
        r = archive_read_next_header(outer, &e);
    if (archive_filter_code(outer, 0) == ARCHIVE_FILTER_NONE) {
        /* Plain, empty or unreadable: the format reader says which, from the start. */
        archive_read_free(outer);
        if (start >= 0 && lseek(s->fd, start, SEEK_SET) < 0)
            return error_set(err, -errno, "cannot rewind the archive: %m");
        return 0;
    }
    if (r < ARCHIVE_WARN) {
        r = error_set(err, -EBADMSG, "the archive is damaged: %s", archive_error_string(outer) ?: "unreadable");
        archive_read_free(outer);
        return r;
    }
    s->outer = outer;
    return 0;
}

int upload_source_open(struct archive *a, int fd, uint64_t max_header_bytes, struct error *err,
                       struct upload_source **ret)
{
    struct upload_source *s = calloc(1, sizeof(*s));
    if (!s)
        return error_set(err, -ENOMEM, "out of memory");
    s->fd = fd;
    s->max_header_bytes = max_header_bytes;
    int r = open_outer(s, err);
    if (r < 0) {
        free(s);
        return r;
    }
    if (archive_read_set_callback_data(a, s) < ARCHIVE_OK || archive_read_set_read_callback(a, source_read) < ARCHIVE_OK ||
        (!s->outer && archive_read_set_seek_callback(a, source_seek) < ARCHIVE_OK)) {
        upload_source_free(s);
        return error_set(err, -ENOMEM, "cannot set up the archive reader: %s", archive_error_string(a));
    }
    /* Owned by the caller from here even if opening fails: the format reader
     * keeps a pointer to it until it is freed. */
    *ret = s;
    if (archive_read_open1(a) < ARCHIVE_WARN)
        return error_set(err, -EBADMSG, "not a zip or tar archive: %s", archive_error_string(a) ?: "unreadable");
    return 0;
}

void upload_source_header_begin(struct upload_source *s)
{
    s->in_header = true;
    s->header_start = s->fed;
}

void upload_source_header_end(struct upload_source *s)
{
    s->in_header = false;
}

bool upload_source_header_too_large(const struct upload_source *s)
{
    return s->header_too_large;
}

uint64_t upload_source_packed_bytes(const struct upload_source *s, struct archive *a)
{
    la_int64_t n = s->outer ? archive_filter_bytes(s->outer, -1) : archive_filter_bytes(a, -1);
    return (uint64_t)MAX(n, 1);
}

void upload_source_free(struct upload_source *s)
{
    if (!s)
        return;
    if (s->outer)
        archive_read_free(s->outer);
    free(s);
}
