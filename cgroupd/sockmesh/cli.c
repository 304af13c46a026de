// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cli.c - the option parser of `sockmesh`, driven by SM_CLI_COMMANDS. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	unsigned int opts;
} commands[SM_CLI_NR] = {
#define SM_CLI_ROW(id, nm, o, synopsis, help) [SM_CLI_##id] = {#nm, o},
	SM_CLI_COMMANDS(SM_CLI_ROW)
#undef SM_CLI_ROW
};

/* Other spellings of help and version. */
static const struct {
	const char *name;
	enum sm_cli_cmd cmd;
} aliases[] = {
	{"--help", SM_CLI_HELP},
	{"-h", SM_CLI_HELP},
	{"--version", SM_CLI_VERSION},
};

unsigned int sm_cli_options(enum sm_cli_cmd cmd)
{
	return cmd < SM_CLI_NR ? commands[cmd].opts : 0;
}

const char *sm_cli_name(enum sm_cli_cmd cmd)
{
	return cmd < SM_CLI_NR ? commands[cmd].name : "?";
}

static int lookup(const char *name, enum sm_cli_cmd *cmd)
{
	for (int i = 0; i < SM_CLI_NR; i++) {
		if (!strcmp(name, commands[i].name)) {
			*cmd = i;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (!strcmp(name, aliases[i].name)) {
			*cmd = aliases[i].cmd;
			return 0;
		}
	}
	return -ENOENT;
}

int sm_cli_parse(int argc, char **argv, struct sm_cli_args *out, char *err,
		 size_t errlen)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"cgroup", required_argument, NULL, 'g'},
		{"json", no_argument, NULL, 'j'},
		{"as-root", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *name;
	unsigned int allowed;
	char *end;
	int opt;

	memset(out, 0, sizeof(*out));
	out->first = 2;
	out->delay = 1;
	if (argc < 2) {
		snprintf(err, errlen,
			 "sockmesh: no command; see `sockmesh help`");
		return -EINVAL;
	}
	name = argv[1];
	if (lookup(name, &out->cmd)) {
		snprintf(err, errlen,
			 "sockmesh: unknown command '%s'; see `sockmesh help`",
			 name);
		return -ENOENT;
	}
	if (out->cmd == SM_CLI_HELP || out->cmd == SM_CLI_VERSION)
		return 0; /* the rest is ignored */
	allowed = commands[out->cmd].opts;

	/* the command is argv[0] of its options; 0 resets getopt entirely */
	optind = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, "+c:d:n:h", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c':
			out->config = optarg;
			break;
		case 'g':
			if (!(allowed & SM_OPT_CGROUP))
				goto bad;
			out->cgroup = optarg;
			break;
		case 'r':
			if (!(allowed & SM_OPT_ASROOT))
				goto bad;
			out->as_root = true;
			break;
		case 'j':
			if (!(allowed & SM_OPT_JSON))
				goto bad;
			out->json = true;
			break;
		case 'd':
			if (!(allowed & SM_OPT_DELAY))
				goto bad;
			out->delay = strtod(optarg, &end);
			if (end == optarg || *end || !(out->delay >= 0.05) ||
			    out->delay > 3600)
				goto bad;
			break;
		case 'n':
			if (!(allowed & SM_OPT_COUNT))
				goto bad;
			out->count = strtol(optarg, &end, 10);
			if (end == optarg || *end || out->count < 0)
				goto bad;
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
