/* Leveled logging to stderr. When stderr is connected to journald (JOURNAL_STREAM
 * names it), lines carry the "<N>" priority prefix journald understands; otherwise
 * they carry an ISO-8601 time and the level name. Library code does not log: the
 * caller that decides what to do logs once, with context. */
#pragma once

#include <syslog.h>

#include "common/util.h"

/* Sets the highest level printed (LOG_ERR .. LOG_DEBUG). Default LOG_INFO. */
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "error", "warning", "notice", "info", "debug". -EINVAL otherwise. */
int log_level_from_string(const char *s);
/* Name printed before each line when not under journald ("berthd"). */
void log_set_ident(const char *ident);

void log_full(int level, const char *fmt, ...) _printf_(2, 3);
/* Logs fmt followed by ": strerror(error)" and returns -abs(error), so callers can
 * `return log_errno(r, "open %s", path);`. */
int log_full_errno(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_errno(r, ...) log_full_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), __VA_ARGS__)
