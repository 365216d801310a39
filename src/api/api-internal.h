/* Shared between the API's connection handling and its handlers. */
#pragma once

#include "api/api.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/json.h"
#include "http/http1.h"

struct api_request {
    enum http_method method;
    const char *segments[8];       /* path after /api/v1/, split at '/', decoded */
    size_t n_segments;
    const char *query;             /* after '?', or "" */
    const struct json_value *body; /* parsed JSON body, or NULL if none */
    const char *actor;             /* who is asking: "root" or a user name */
    bool admin;
};

struct api_response {
    int status;
    struct buf body;               /* JSON */
    struct json_writer json;       /* writes into body */
};

/* Starts a JSON answer with status. */
void api_reply(struct api_response *res, int status);
/* Answers an error: {"error": {"status":..., "message":...}}. */
void api_reply_error(struct api_response *res, int status, const char *fmt, ...) _printf_(3, 4);
/* Answers an error from a struct error, mapping its code to a status. */
void api_reply_failure(struct api_response *res, const struct error *err);
/* The HTTP status for a negative errno (-EINVAL 400, -ENOENT 404, -EEXIST 409...). */
int api_status_for(int code);
/* Reads a query parameter into out; false if absent. */
bool api_query_get(const char *query, const char *key, char *out, size_t n);

void api_handle_status(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_sites(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_users(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_events(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* Writes a site record as a JSON object (the shape `site show --json` prints). */
void api_write_site(const struct api_config *cfg, struct json_writer *w, const struct store_site *site);
