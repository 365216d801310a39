/* PUT /api/v1/sites/NAME/content: the one request whose body is not buffered in
 * memory (the API caps those at 1 MiB) but streamed to an unlinked temp file as it
 * arrives, then unpacked into the site's public/ (src/upload). The connection code
 * (server.c) hands such a request over here after its head, feeds the raw body
 * bytes as they come, and writes the answer this file prepares. */
#pragma once

#include "api/api-internal.h"

struct api_upload;

/* True when the request head names the upload endpoint (any method: the wrong one
 * is answered by api_upload_begin, before its body is read). */
bool api_upload_wanted(const struct http1_request *http);
/* Starts an upload for req (its path already split, its actor decided). Returns 0
 * and the upload in *ret, whose body bytes api_upload_feed then takes; or a negative
 * errno with the error answer in res, sent before the body: the connection must
 * close after it. Copies what it needs from http. */
int api_upload_begin(const struct api_config *cfg, const struct api_request *req,
                     const struct http1_request *http, struct api_response *res, struct api_upload **ret);
/* Takes raw body bytes data[0..len) (chunked coding is decoded here, in place).
 * Returns 0 when more are needed (all of them used); 1 when the body is complete and
 * res holds the answer (the upload ran); a negative errno when the request failed and
 * res holds the error (close the connection: the rest of the body is not read).
 * *ret_used is how many bytes of data belonged to this body; bytes after them (the
 * next pipelined request) are left at data[*ret_used..len). Blocks the caller while
 * the archive is unpacked: bounded by the upload limits. */
int api_upload_feed(struct api_upload *u, char *data, size_t len, struct api_response *res, size_t *ret_used);
/* Whether the connection may stay open after the answer. */
bool api_upload_keep_alive(const struct api_upload *u);
/* Closes the temp file (its data goes with it) and frees u. NULL-safe. */
void api_upload_free(struct api_upload *u);
