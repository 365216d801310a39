/* Site snapshots: a site's public/ and private/ and its settings in one
 * `<state>/sites/NAME/backups/NAME-YYYYMMDD-HHMMSS.tar.zst` (pax tar, zstd).
 *
 * This component writes snapshots, names and lists them, and reads their settings
 * file. Restoring goes through the upload component (upload_restore_*), which judges
 * a snapshot as hostile as any upload. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"
#include "store/store.h"

#define SNAPSHOT_SUFFIX ".tar.zst"
/* The settings file at the top of a snapshot, beside public/ and private/. */
#define SNAPSHOT_META "berth-site.json"
/* The most a settings file may hold. */
#define SNAPSHOT_META_MAX (64 * 1024)
/* The most a name may hold, NUL included. */
#define SNAPSHOT_NAME_MAX 128
/* The deepest a snapshot walks into a site's folders (as an upload unpacks). */
#define SNAPSHOT_MAX_DEPTH 128

/* Whether name is one of site's snapshot names: "SITE-YYYYMMDD-HHMMSS.tar.zst", or
 * "SITE-YYYYMMDD-HHMMSS-N.tar.zst" (N: 1 to 999) when a second one was made within
 * the same second; an automatic one has "-auto" after the time
 * ("SITE-YYYYMMDD-HHMMSS-auto[-N].tar.zst"). Anything else (a path, "..", another
 * site's) is refused. */
bool snapshot_name_valid(const char *site, const char *name);
/* Whether name is one of site's snapshot names as made by a schedule (with the
 * "-auto" mark); false for one made by hand and for anything invalid. */
bool snapshot_name_automatic(const char *site, const char *name);
/* Writes site's snapshot name for time t (UTC), with suffix n (0: none) into out;
 * with the "-auto" mark when automatic. */
void snapshot_name_format(const char *site, time_t t, unsigned n, bool automatic,
                          char out[static SNAPSHOT_NAME_MAX]);

/* ---- automatic backups (schedule.c) ----
 *
 * An automatic snapshot is named "SITE-YYYYMMDD-HHMMSS-auto[-N].tar.zst": the mark
 * is in the name, so it survives a copy and `site archives` shows it, and pruning
 * to a schedule's keep count can leave every snapshot made by hand alone. */

/* The first time strictly after `after` (unix seconds) at which a backup every
 * `every` at `hour` UTC falls due: daily at hour:00, weekly on Sundays at hour:00.
 * 0 when every is off. */
int64_t snapshot_schedule_next(enum store_backup_every every, unsigned hour, int64_t after);
/* When a site's next automatic backup is due: the first time after the later of
 * since (the schedule's last change) and last_at (its last automatic backup's
 * start). A time in the past is a backup missed (berthd was down): it is due at
 * once, and only once, since the run it makes moves last_at past it. */
int64_t snapshot_schedule_due(enum store_backup_every every, unsigned hour, int64_t since, int64_t last_at);

struct snapshot_info {
    char name[SNAPSHOT_NAME_MAX];
    uint64_t size;
    int64_t mtime;    /* seconds since the epoch */
};

/* Lists site's snapshots in backups_fd (regular files with a valid name; anything
 * else there is ignored), newest first. *ret is malloc'd (free() it). */
int snapshot_list(int backups_fd, const char *site, struct snapshot_info **ret, size_t *ret_n);

/* Writes the settings file for site (type, domains, limits, php settings, cmd,
 * network, always-on, idle time) as JSON into out. */
int snapshot_settings_write(const struct store_site *site, int64_t now, struct buf *out);
/* Reads a settings file into ret (zeroed by the caller; free with store_site_done
 * even on failure): type, cmd, network, memory_max, cpu_millis, pids_max,
 * idle_seconds, always_on, php_settings (checked and normalised, as `site set`
 * does), domains (normalised). -EINVAL with a sentence in err when it is not one. */
int snapshot_settings_read(const char *json, size_t len, struct store_site *ret, struct error *err);
/* Reads a settings file (as snapshot_settings_read) and moves what a restore with
 * settings changes into site: type, cmd, network, limits, idle time, always-on,
 * php settings, domains. Owner, name, uid and desired state stay. On failure site
 * is unchanged. */
int snapshot_settings_apply(struct store_site *site, const char *json, size_t len, struct error *err);

/* Writes a snapshot of site_dir_fd's directories dirs (each as a top-level folder,
 * its files, folders and symlinks; links are stored, never followed; sockets and
 * fifos skipped) and the settings file meta to out_fd, a pax tar compressed with
 * zstd. *ret_bytes: the file data stored. A write failure (-ENOSPC...) is returned
 * with err set; out_fd then holds a partial file the caller discards. Blocks. */
int snapshot_write(int site_dir_fd, const char *const *dirs, size_t n_dirs, const char *meta, size_t meta_len,
                   int out_fd, struct error *err, uint64_t *ret_bytes);
