// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_cli.c - libFuzzer harness for the command line of `sockmesh`
 * (sm_cli_parse): the input is argv[1..] separated by NUL bytes, argv[0] is
 * "sockmesh". Each argument is a malloc()ed string of its own, so that ASan
 * sees a read past any of them. Checked beyond what the sanitizers catch:
 * the result is consistent (a known command, operands where getopt stopped,
 * option values inside the arguments), argv is left as it was, and parsing
 * again gives the same result (getopt's global state is reset). Any
 * violation aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define ARGS_MAX 64
#define ERR_LEN	 512

static const char *const names[] = {
	"help", "--help", "-h",	    "version", "--version",
	"run",	"status", "unload", "reload",  "top",
};

static void __attribute__((noreturn))
violation(const char *what, int argc, char **argv)
{
	fprintf(stderr, "fuzz_cli: %s\nargv:", what);
	for (int i = 0; i < argc; i++)
		fprintf(stderr, " '%s'", argv[i]);
	fputc('\n', stderr);
	abort();
}

static bool known(const char *cmd)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(cmd, names[i]))
			return true;
	return false;
}

/* @p is NULL, or inside one of argv[2..argc-1] (an option's value). */
static bool in_args(const char *p, int argc, char **argv)
{
	if (!p)
		return true;
	for (int i = 2; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static const char *check(int ret, const struct sm_cli_args *a, const char *err,
			 int argc, char **argv)
{
	if (ret) {
		if (ret != -EINVAL && ret != -ENOENT)
			return "an error that is not -EINVAL or -ENOENT";
		/* cut to ERR_LEN where it quotes a long command name */
		if (strncmp(err, "sockmesh", 8) ||
		    (strlen(err) < ERR_LEN - 1 &&
		     !strstr(err, "sockmesh help")))
			return "an error message that is not one of ours";
		if ((ret == -ENOENT) != (argc >= 2 && !known(argv[1])))
			return "-ENOENT, but not for an unknown command";
		return NULL;
	}
	if (argc < 2 || !known(argv[1]))
		return "success without a known command";
	if (a->cmd < SM_CLI_HELP || a->cmd >= SM_CLI_NR)
		return "cmd out of range";
	if ((a->cmd == SM_CLI_RUN && strcmp(argv[1], "run")) ||
	    (a->cmd == SM_CLI_STATUS && strcmp(argv[1], "status")) ||
	    (a->cmd == SM_CLI_UNLOAD && strcmp(argv[1], "unload")) ||
	    (a->cmd == SM_CLI_RELOAD && strcmp(argv[1], "reload")) ||
	    (a->cmd == SM_CLI_TOP && strcmp(argv[1], "top")))
		return "not the command that was named";
	if (a->first < 2 || a->first > argc)
		return "first operand out of range";
	if (!in_args(a->config, argc, argv) || !in_args(a->cgroup, argc, argv))
		return "an option value outside of argv";
	if (a->json && a->cmd != SM_CLI_STATUS && a->cmd != SM_CLI_HELP)
		return "--json taken by a command other than status";
	if (a->cgroup && a->cmd != SM_CLI_RUN && a->cmd != SM_CLI_HELP)
		return "--cgroup taken by a command other than run";
	/* getopt stops at "--" or at the first argument not an option */
	if (a->cmd >= SM_CLI_RUN && a->first < argc &&
	    argv[a->first][0] == '-' && strcmp(argv[a->first], "-") &&
	    strcmp(argv[a->first - 1], "--"))
		return "an option left as an operand";
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	opterr = 0; /* getopt's own messages: not ours, and noisy */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[ARGS_MAX + 2], *copy[ARGS_MAX + 1];
	char err[ERR_LEN], err2[ERR_LEN];
	struct sm_cli_args a, b;
	const uint8_t *p = data, *end = data + size, *nul;
	const char *bad;
	int argc = 1, ret, ret2;

	argv[0] = strdup("sockmesh");
	while (p < end && argc <= ARGS_MAX) {
		nul = memchr(p, '\0', (size_t)(end - p));
		if (!nul)
			nul = end;
		argv[argc] = strndup((const char *)p, (size_t)(nul - p));
		copy[argc] = argv[argc];
		argc++;
		p = nul + 1;
	}
	argv[argc] = NULL;
	copy[0] = argv[0];

	err[0] = '\0';
	ret = sm_cli_parse(argc, argv, &a, err, sizeof(err));
	bad = check(ret, &a, err, argc, argv);
	if (bad)
		violation(bad, argc, argv);
	for (int i = 0; i <= argc; i++)
		if (argv[i] != (i < argc ? copy[i] : NULL))
			violation("argv was reordered", argc, argv);

	/* the same again: nothing left over from the first parse */
	err2[0] = '\0';
	ret2 = sm_cli_parse(argc, argv, &b, err2, sizeof(err2));
	if (ret != ret2 || strcmp(err, err2) ||
	    (!ret &&
	     (a.cmd != b.cmd || a.config != b.config || a.cgroup != b.cgroup ||
	      a.json != b.json || a.first != b.first)))
		violation("parsing twice gives two results", argc, argv);

	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
