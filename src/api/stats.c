/* /api/v1/sites/NAME/stats and the "requests" member of a site: figures from the
 * history berthd keeps in memory (src/sites/stats.c). */
#include "api/api-internal.h"

void api_write_site_requests(const struct api_config *cfg, struct json_writer *w, const char *name)
{
    struct sites_stats_report *r = malloc(sizeof(*r));
    json_key(w, "requests");
    if (!cfg->stats || !r) {
        json_null(w);
        free(r);
        return;
    }
    sites_stats_get(cfg->stats, name, now_s(), r);
    json_object_begin(w);
    json_kv_uint(w, "last_minute", r->last_minute);
    json_kv_uint(w, "last_hour", r->last_hour);
    json_kv_uint(w, "total", r->totals.requests);
    json_object_end(w);
    free(r);
}

void api_handle_site_stats(const struct api_config *cfg, const struct api_request *req, const char *site,
                           struct api_response *res)
{
    if (req->method != HTTP_GET) {
        api_reply_error(res, 405, "use GET on a site's stats");
        return;
    }
    if (!cfg->stats) {
        api_reply_error(res, 503, "this berthd keeps no statistics");
        return;
    }
    _cleanup_free_ struct sites_stats_report *r = malloc(sizeof(*r));
    if (!r) {
        api_reply_error(res, 500, "out of memory");
        return;
    }
    int64_t now = now_s();
    sites_stats_get(cfg->stats, site, now, r);
    struct json_writer *w = &res->json;
    api_reply(res, 200);
    json_object_begin(w);
    json_kv_string(w, "name", site);
    json_kv_int(w, "since", r->since);
    json_kv_int(w, "now", now);
    json_kv_uint(w, "last_minute", r->last_minute);
    json_kv_uint(w, "last_hour", r->last_hour);
    json_key(w, "minutes");
    json_array_begin(w);
    for (size_t i = 0; i < SITES_STATS_MINUTES; i++) {
        const struct sites_stats_minute *m = &r->minutes[i];
        json_object_begin(w);
        json_kv_int(w, "time", m->time);
        json_kv_uint(w, "requests", m->requests);
        json_kv_uint(w, "errors", m->errors);
        json_kv_uint(w, "bytes", m->bytes);
        json_key(w, "memory");
        if (m->has_memory)
            json_uint(w, m->memory);
        else
            json_null(w);
        json_key(w, "cpu_seconds");
        json_double(w, (double)m->cpu_usec / 1e6);
        json_object_end(w);
    }
    json_array_end(w);
    json_key(w, "totals");
    json_object_begin(w);
    json_kv_uint(w, "requests", r->totals.requests);
    static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx" };
    for (size_t k = 0; k < 4; k++)
        json_kv_uint(w, classes[k], r->totals.status[k]);
    json_kv_uint(w, "bytes", r->totals.bytes);
    json_key(w, "cpu_seconds");
    json_double(w, (double)r->total_cpu_usec / 1e6);
    json_object_end(w);
    json_object_end(w);
}
