/* Site lifecycle: the one place that creates, changes and removes sites, keeping the
 * store (the truth) and each site's directory tree in agreement. The API, the CLI's
 * `apply` and berthd's start-up all go through here.
 *
 * Crash safety: a site's tree is built under a staging name, the store row is
 * committed, and only then is the tree renamed into place. Removal deletes the row
 * first, then the tree. sites_reconcile() at start-up finishes or undoes whatever a
 * crash interrupted, from the store's truth: no trace, or a whole site. */
#pragma once

#include <sys/types.h>

#include "common/error.h"
#include "store/store.h"

struct sites;

struct sites_config {
    const char *state_dir;     /* sites live in <state_dir>/sites/<name> */
    const char *base_domain;   /* default host of site NAME is NAME.<base_domain> */
    uid_t front_uid;           /* the front's workers: read public/, write logs/ */
    gid_t front_gid;
};

/* What changed, for observers (the front's route table, later the supervisor). */
enum sites_change { SITES_CHANGE_UPSERT, SITES_CHANGE_REMOVE };
typedef void (*sites_observer_fn)(void *data, enum sites_change change,
                                  const struct store_site *site);

/* store is borrowed and must outlive the manager. */
int sites_new(struct store *store, const struct sites_config *cfg, struct sites **ret);
void sites_free(struct sites *s);   /* NULL-safe */
/* Called for every successful change, after it is committed. One observer. */
void sites_set_observer(struct sites *s, sites_observer_fn fn, void *data);

/* Brings the disk in line with the store: removes staging, trash and orphan trees,
 * recreates missing site trees and repairs owners and modes of existing ones.
 * Returns the number of repairs made (>= 0). */
int sites_reconcile(struct sites *s, struct error *err);

/* The default host name of a site, "NAME.<base>", into out. */
void sites_default_host(const struct sites *s, const char *name, char *out, size_t n);
/* The host path of a site's directory, "<state>/sites/NAME", into out. */
void sites_dir(const struct sites *s, const char *name, char *out, size_t n);

/* Validates spec, normalises its domains, inserts it (allocating its uid) and
 * creates its tree, atomically. spec->name/type/... are read; id, uid, created_at
 * and domains (normalised) are filled in on success. actor names who asked, for the
 * audit log. */
int sites_create(struct sites *s, struct store_site *spec, const char *actor, struct error *err);
/* Applies changes: `update` is the site as it should be (read it with store_site_get,
 * change fields, pass it back). Validated as create; the name and uid never change. */
int sites_update(struct sites *s, struct store_site *update, const char *actor,
                 const char *what_json, struct error *err);
/* Records the desired state ("running" or "stopped"). */
int sites_set_desired_state(struct sites *s, const char *name, const char *state,
                            const char *actor, struct error *err);
/* Removes the site from the store, then its tree. */
int sites_remove(struct sites *s, const char *name, const char *actor, struct error *err);

/* Test hook: when the environment variable BERTH_TEST_CRASH names a point
 * ("site-create:staged", "site-create:stored", "site-rm:stored"), berthd kills itself
 * with SIGKILL there, so tests can check crash recovery at each step. */
void sites_crash_point(const char *point);
