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

/* Options, as the commands of SM_CLI_COMMANDS accept them. */
#define SM_OPT_CONFIG (1U << 0) /* -c, --config FILE */
#define SM_OPT_CGROUP (1U << 1) /* --cgroup NAME */
#define SM_OPT_JSON   (1U << 2) /* --json */
#define SM_OPT_DELAY  (1U << 3) /* -d SECONDS */
#define SM_OPT_COUNT  (1U << 4) /* -n COUNT */
#define SM_OPT_ASROOT (1U << 5) /* --as-root */

/*
 * Every command once: X(ID, name, options, synopsis, what it does).
 * sockmesh.c makes its {name, handler} table from it (a command without a
 * cmd_<name> handler does not link) and the usage text.
 */
#define SM_CLI_COMMANDS(X)                                                      \
	X(HELP, help, 0, "help", "this help")                                   \
	X(VERSION, version, 0, "version", "print the version")                  \
	X(RUN, run, SM_OPT_CONFIG | SM_OPT_CGROUP | SM_OPT_ASROOT,              \
	  "run [-c FILE] [--cgroup NAME] [--as-root] -- CMD [ARGS...]",         \
	  "run CMD in an accelerated cgroup (the first configured\n"            \
	  "                 one unless named); as yourself: under sudo, as\n"   \
	  "                 the user who ran sudo unless --as-root; a user\n"   \
	  "                 in run_group asks sockmeshd to move it")            \
	X(STATUS, status, SM_OPT_CONFIG | SM_OPT_JSON,                          \
	  "status [-c FILE] [--json]",                                          \
	  "what is attached where, sockets in the map, counters\n"              \
	  "                 (global and per cgroup)")                           \
	X(UNLOAD, unload, SM_OPT_CONFIG, "unload [-c FILE]",                    \
	  "detach and remove every pin; live connections go on\n"               \
	  "                 over normal TCP (a running sockmeshd is asked to\n" \
	  "                 do it and exit)")                                   \
	X(RELOAD, reload, SM_OPT_CONFIG, "reload [-c FILE]",                    \
	  "the running sockmeshd re-reads FILE, all or nothing")                \
	X(TOP, top, SM_OPT_CONFIG | SM_OPT_DELAY | SM_OPT_COUNT,                \
	  "top [-c FILE] [-d SECONDS] [-n COUNT]",                              \
	  "live per-cgroup rates (-n 1: print once and exit)")

enum sm_cli_cmd {
#define SM_CLI_ENUM(id, name, opts, synopsis, help) SM_CLI_##id,
	SM_CLI_COMMANDS(SM_CLI_ENUM)
#undef SM_CLI_ENUM
		SM_CLI_NR,
};

struct sm_cli_args {
	enum sm_cli_cmd cmd;
	const char *config; /* -c FILE, or NULL for the default */
	const char *cgroup; /* run --cgroup NAME, or NULL */
	bool json;	    /* status --json */
	bool as_root;	    /* run --as-root */
	double delay;	    /* top -d SECONDS (> 0; default 1) */
	long count;	    /* top -n COUNT (0: until interrupted) */
	int first;	    /* index in argv of the first operand */
};

/* Options a command takes (SM_OPT_*), its name, its synopsis. */
unsigned int sm_cli_options(enum sm_cli_cmd cmd);
const char *sm_cli_name(enum sm_cli_cmd cmd);

/*
 * Parse `sockmesh COMMAND [OPTIONS] [OPERANDS]`: argv[1] is the command.
 * Operands are left to the caller (argv[first..argc-1]). Returns 0, or
 * -EINVAL (no command, bad option) or -ENOENT (unknown command) with the
 * message to print in @err. Uses getopt_long(): not thread-safe.
 */
int sm_cli_parse(int argc, char **argv, struct sm_cli_args *out, char *err,
		 size_t errlen);

#endif
