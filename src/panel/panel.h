/* The web panel: plain HTML, CSS and JavaScript (index.html, panel.css, panel.js in
 * this folder), turned into C arrays at build time by embed.py so that berthd carries
 * them and serves them from memory: nothing to install, nothing to build in a browser
 * toolchain. The API serves them on panel.sock (src/api/panel.c). */
#pragma once

#include <stddef.h>

/* One embedded file. Everything is static and lives as long as the program. */
struct panel_asset {
    const char *path;              /* URL path: "/" for index.html, "/assets/NAME" for the rest */
    const char *content_type;      /* with charset for text */
    const unsigned char *data;
    size_t len;
    const char *etag;              /* strong ETag, quoted: a hash of the contents */
};

/* The asset served at path (exact match, no query), or NULL. */
const struct panel_asset *panel_asset_find(const char *path);
