/* berth site upload: kept apart from cli.h so the command family can grow
 * without touching the shared header. */
#pragma once

#include "cli/cli.h"

/* berth site upload NAME PATH. argv holds NAME and PATH (argc 2); PATH is a zip or
 * tar(.gz/.zst/.xz) file sent as it is, or a folder packed into a tar on the fly.
 * Prints "uploaded N files (SIZE) to site NAME". Returns an exit status. */
int cli_site_upload(const struct cli *cli, int argc, char **argv);
