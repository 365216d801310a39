/* /api/v1/sites/NAME/keys: the SSH keys that may log in to a site over SFTP.
 *   GET    .../keys             the keys, oldest first
 *   POST   .../keys {key}       adds one ("ssh-ed25519 AAAA... comment")
 *   DELETE .../keys/FINGERPRINT removes one (URL-safe: '_' and '-' for '/' and '+');
 *                               its open sessions end at once
 * The caller (sites.c) has checked that the asker may manage the site. */
#include <stdio.h>

#include "api/api-internal.h"
#include "common/log.h"
#include "ssh/ssh.h"
#include "store/store.h"

static void write_key(struct json_writer *w, const struct store_site_key *k)
{
    char url[SSH_FINGERPRINT_MAX];
    ssh_fingerprint_to_url(k->fingerprint, url, sizeof(url));
    json_object_begin(w);
    json_kv_string(w, "algorithm", k->algorithm);
    json_kv_string(w, "fingerprint", k->fingerprint);
    json_kv_string(w, "id", url);
    json_kv_string(w, "comment", k->comment);
    json_kv_string(w, "key", k->key);
    json_kv_int(w, "created_at", k->created_at);
    json_object_end(w);
}

static int key_event(const struct api_config *cfg, const char *actor, const char *action, const char *site,
                     const char *fingerprint, const char *comment)
{
    struct buf detail = BUF_INIT(1024);
    struct json_writer w;
    json_writer_init(&w, &detail, false);
    json_object_begin(&w);
    json_kv_string(&w, "fingerprint", fingerprint);
    if (comment)
        json_kv_string(&w, "comment", comment);
    json_object_end(&w);
    int r = json_writer_finish(&w);
    if (r >= 0)
        r = store_event_append(cfg->store, actor, action, site, detail.data);
    buf_done(&detail);
    return r;
}

static void list_keys(const struct api_config *cfg, const char *site, struct api_response *res)
{
    struct store_site_key *list;
    size_t n;
    if (store_site_key_list(cfg->store, site, &list, &n) < 0) {
        api_reply_error(res, 500, "cannot read the keys of site %s: %s", site, store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    /* How to connect, for the panel: the first ssh listener's port (the host is
     * the name the user reached berth by), the user name and the host key. */
    const char *port = NULL;
    for (size_t i = 0; i < cfg->n_listeners && !port; i++)
        if (streq(cfg->listeners[i].kind, "ssh"))
            port = strrchr(cfg->listeners[i].address, ':');
    json_key(&res->json, "sftp");
    if (port && cfg->ssh_fingerprint) {
        json_object_begin(&res->json);
        json_kv_string(&res->json, "user", site);
        json_kv_string(&res->json, "port", port + 1);
        json_kv_string(&res->json, "host_key", cfg->ssh_fingerprint);
        json_object_end(&res->json);
    } else {
        json_null(&res->json);
    }
    json_key(&res->json, "keys");
    json_array_begin(&res->json);
    for (size_t i = 0; i < n; i++)
        write_key(&res->json, &list[i]);
    json_array_end(&res->json);
    json_object_end(&res->json);
    store_site_key_list_free(list, n);
}

static void add_key(const struct api_config *cfg, const struct api_request *req, const char *site,
                    struct api_response *res)
{
    const struct json_value *v = req->body ? json_get(req->body, "key") : NULL;
    if (!v || v->type != JSON_STRING) {
        api_reply_error(res, 400, "give the public key as {\"key\": \"ssh-ed25519 AAAA... comment\"}");
        return;
    }
    struct ssh_pubkey k;
    char why[256];
    int r = ssh_pubkey_parse(v->string.data, v->string.len, &k, why, sizeof(why));
    if (r == -ENOMEM) {
        api_reply_error(res, 500, "out of memory");
        return;
    }
    if (r < 0) {
        api_reply_error(res, 400, "invalid SSH public key: %s", why);
        return;
    }
    struct store_site_key sk = {
        .algorithm = k.type, .key = k.base64, .fingerprint = k.fingerprint, .comment = k.comment,
        .created_at = now_s(),
    };
    r = store_begin(cfg->store);
    if (r >= 0)
        r = store_site_key_insert(cfg->store, site, &sk);
    if (r >= 0)
        r = key_event(cfg, req->actor, "site.key.add", site, k.fingerprint, k.comment);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r == -EEXIST)
        api_reply_error(res, 409, "site %s already has the key %s", site, k.fingerprint);
    else if (r < 0)
        api_reply_error(res, api_status_for(r), "cannot add the key to site %s: %s", site, store_errmsg(cfg->store));
    else {
        log_info("site %s: SSH key %s (%s%s%s) added by %s", site, k.fingerprint, k.type, k.comment[0] ? ", " : "",
                 k.comment, req->actor);
        api_reply(res, 201);
        write_key(&res->json, &sk);
    }
    ssh_pubkey_done(&k);
}

static void remove_key(const struct api_config *cfg, const struct api_request *req, const char *site,
                       const char *id, struct api_response *res)
{
    char fp[SSH_FINGERPRINT_MAX];
    if (ssh_fingerprint_from_url(id, fp) < 0) {
        api_reply_error(res, 400, "\"%s\" is not a key fingerprint (SHA256:... as `berth site key ls` shows it)", id);
        return;
    }
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_site_key_delete(cfg->store, site, fp);
    if (r >= 0)
        r = key_event(cfg, req->actor, "site.key.remove", site, fp, NULL);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r == -ENOENT) {
        api_reply_error(res, 404, "site %s has no key %s", site, fp);
        return;
    }
    if (r < 0) {
        api_reply_error(res, api_status_for(r), "cannot remove the key: %s", store_errmsg(cfg->store));
        return;
    }
    /* A revoked key must not keep a session it opened. */
    unsigned ended = cfg->ssh_broker ? api_ssh_broker_end_sessions(cfg->ssh_broker, site, fp) : 0;
    log_info("site %s: SSH key %s removed by %s%s", site, fp, req->actor, ended ? "; its sessions were ended" : "");
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "removed", fp);
    json_kv_uint(&res->json, "sessions_ended", ended);
    json_object_end(&res->json);
}

void api_handle_site_keys(const struct api_config *cfg, const struct api_request *req, const char *site,
                          struct api_response *res)
{
    if (req->n_segments == 3) {
        if (req->method == HTTP_GET)
            list_keys(cfg, site, res);
        else if (req->method == HTTP_POST)
            add_key(cfg, req, site, res);
        else
            api_reply_error(res, 405, "use GET or POST on /api/v1/sites/%s/keys", site);
        return;
    }
    if (req->method != HTTP_DELETE) {
        api_reply_error(res, 405, "use DELETE on a key");
        return;
    }
    remove_key(cfg, req, site, req->segments[3], res);
}
