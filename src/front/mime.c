/* File extension -> Content-Type. A sorted table searched by bisection: the table
 * is small and fixed, so no hashing and no allocation. */
#include <ctype.h>

#include "front/front-internal.h"

struct mime {
    const char *ext;
    const char *type;
};

/* Sorted by ext (bytewise). Text types say utf-8: that is what sites upload today,
 * and browsers otherwise guess. */
static const struct mime mimes[] = {
    { "7z", "application/x-7z-compressed" },
    { "aac", "audio/aac" },
    { "avif", "image/avif" },
    { "bin", "application/octet-stream" },
    { "bmp", "image/bmp" },
    { "css", "text/css; charset=utf-8" },
    { "csv", "text/csv; charset=utf-8" },
    { "eot", "application/vnd.ms-fontobject" },
    { "epub", "application/epub+zip" },
    { "flac", "audio/flac" },
    { "gif", "image/gif" },
    { "gz", "application/gzip" },
    { "htm", "text/html; charset=utf-8" },
    { "html", "text/html; charset=utf-8" },
    { "ico", "image/x-icon" },
    { "ics", "text/calendar; charset=utf-8" },
    { "jpeg", "image/jpeg" },
    { "jpg", "image/jpeg" },
    { "js", "text/javascript; charset=utf-8" },
    { "json", "application/json" },
    { "jsonld", "application/ld+json" },
    { "m4a", "audio/mp4" },
    { "manifest", "text/cache-manifest; charset=utf-8" },
    { "map", "application/json" },
    { "md", "text/markdown; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "mp3", "audio/mpeg" },
    { "mp4", "video/mp4" },
    { "mpeg", "video/mpeg" },
    { "oga", "audio/ogg" },
    { "ogg", "audio/ogg" },
    { "ogv", "video/ogg" },
    { "otf", "font/otf" },
    { "pdf", "application/pdf" },
    { "png", "image/png" },
    { "rss", "application/rss+xml" },
    { "svg", "image/svg+xml" },
    { "tar", "application/x-tar" },
    { "tif", "image/tiff" },
    { "tiff", "image/tiff" },
    { "ttf", "font/ttf" },
    { "txt", "text/plain; charset=utf-8" },
    { "wasm", "application/wasm" },
    { "wav", "audio/wav" },
    { "webm", "video/webm" },
    { "webmanifest", "application/manifest+json" },
    { "webp", "image/webp" },
    { "woff", "font/woff" },
    { "woff2", "font/woff2" },
    { "xhtml", "application/xhtml+xml" },
    { "xml", "application/xml" },
    { "zip", "application/zip" },
};

static const char default_type[] = "application/octet-stream";

const char *front_mime_type(const char *path, size_t len)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '.' && path[i - 1] != '/')
        i--;
    if (i == 0 || path[i - 1] != '.' || len - i == 0 || len - i > 15)
        return default_type;
    char ext[16];
    size_t n = len - i;
    for (size_t k = 0; k < n; k++)
        ext[k] = (char)tolower((unsigned char)path[i + k]);
    ext[n] = 0;
    size_t lo = 0, hi = ARRAY_SIZE(mimes);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(ext, mimes[mid].ext);
        if (c == 0)
            return mimes[mid].type;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return default_type;
}

bool front_mime_compressible(const char *type)
{
    return str_startswith(type, "text/") || str_startswith(type, "application/json") ||
           str_startswith(type, "application/javascript") || str_startswith(type, "application/xml") ||
           str_startswith(type, "application/xhtml") || str_startswith(type, "application/rss") ||
           str_startswith(type, "application/ld+json") || str_startswith(type, "application/manifest") ||
           str_startswith(type, "application/wasm") || str_startswith(type, "image/svg") ||
           str_startswith(type, "font/otf") || str_startswith(type, "font/ttf") ||
           str_startswith(type, "image/x-icon") || str_startswith(type, "application/vnd.ms-fontobject");
}
