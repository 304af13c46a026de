/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cli.h - the command line of `sockmesh`, parsed without side effects:
 * nothing is printed (but getopt's own diagnostics, unless opterr is 0),
 * nothing exits, so that it can be tested and fuzzed.
 */
#ifndef SM_CLI_H
#define SM_CLI_H

#include <stdbool.h>
#include <stddef.h>

enum sm_cli_cmd {
	SM_CLI_HELP, /* help, --help, -h; or -h/--help after a command */
	SM_CLI_VERSION,
	SM_CLI_RUN,
	SM_CLI_STATUS,
	SM_CLI_UNLOAD,
};

struct sm_cli_args {
	enum sm_cli_cmd cmd;
	const char *config; /* -c FILE, or NULL for the default */
	const char *cgroup; /* run --cgroup NAME, or NULL */
	bool json;	    /* status --json */
	int first;	    /* index in argv of the first operand */
};

/*
 * Parse `sockmesh COMMAND [OPTIONS] [OPERANDS]`: argv[1] is the command.
 * Operands are left to the caller (argv[first..argc-1]). Returns 0, or
 * -EINVAL (no command, bad option) or -ENOENT (unknown command) with the
 * message to print in @err. Uses getopt_long(): not thread-safe.
 */
int sm_cli_parse(int argc, char **argv, struct sm_cli_args *out, char *err,
		 size_t errlen);

#endif
