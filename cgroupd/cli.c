// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cli.c - the command table and option parser of `sockmesh`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	enum sm_cli_cmd cmd;
} commands[] = {
	{.name = "help", .cmd = SM_CLI_HELP},
	{.name = "--help", .cmd = SM_CLI_HELP},
	{.name = "-h", .cmd = SM_CLI_HELP},
	{.name = "version", .cmd = SM_CLI_VERSION},
	{.name = "--version", .cmd = SM_CLI_VERSION},
	{.name = "run", .cmd = SM_CLI_RUN},
	{.name = "status", .cmd = SM_CLI_STATUS},
	{.name = "unload", .cmd = SM_CLI_UNLOAD},
};

int sm_cli_parse(int argc, char **argv, struct sm_cli_args *out, char *err,
		 size_t errlen)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"cgroup", required_argument, NULL, 'g'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *name;
	size_t i;
	int opt;

	memset(out, 0, sizeof(*out));
	out->first = 2;
	if (argc < 2) {
		snprintf(err, errlen,
			 "sockmesh: no command; see `sockmesh help`");
		return -EINVAL;
	}
	name = argv[1];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		snprintf(err, errlen,
			 "sockmesh: unknown command '%s'; see `sockmesh help`",
			 name);
		return -ENOENT;
	}
	out->cmd = commands[i].cmd;
	if (out->cmd == SM_CLI_HELP || out->cmd == SM_CLI_VERSION)
		return 0; /* the rest is ignored */

	/* the command is argv[0] of its options; 0 resets getopt entirely */
	optind = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, "+c:h", opts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			out->config = optarg;
			break;
		case 'g':
			if (out->cmd != SM_CLI_RUN)
				goto bad;
			out->cgroup = optarg;
			break;
		case 'j':
			if (out->cmd != SM_CLI_STATUS)
				goto bad;
			out->json = true;
			break;
		case 'h':
			out->cmd = SM_CLI_HELP;
			return 0;
		default:
			goto bad;
		}
	}
	out->first = optind + 1;
	return 0;
bad:
	snprintf(err, errlen, "sockmesh %s: bad option; see `sockmesh help`",
		 name);
	return -EINVAL;
}
