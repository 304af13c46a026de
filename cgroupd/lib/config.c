// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* config.c - the key table of sockmesh.ini and its parsers. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sm_mesh.h"
#include "sockmesh.h"

struct key_def;
typedef int (*parse_fn)(struct sm_config *cfg, const struct key_def *def,
			const char *val, char *err, size_t errlen);

struct key_def {
	const char *section;
	const char *name;
	const char *defval;
	parse_fn parse;
	size_t off;    /* field, for the string and number parsers */
	size_t size;   /* its size, for the string parsers */
	long min, max; /* limits, for the number parsers */
};

#define errf(...) snprintf(err, errlen, __VA_ARGS__)

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/*
 * Split a comma list in place and call @fn on each trimmed item. Empty
 * items are an error unless the whole list is empty.
 */
static int for_each_item(const char *val, char *err, size_t errlen,
			 int (*fn)(void *ctx, const char *item, char *err,
				   size_t errlen),
			 void *ctx)
{
	char buf[1024], *save = NULL, *tok;
	int ret;

	if (strlen(val) >= sizeof(buf)) {
		errf("list is longer than %zu characters", sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, val);
	if (!*trim(buf))
		return 0;
	/* one trailing comma is fine: a list may go on on the next line */
	if (buf[strlen(buf) - 1] == ',')
		buf[strlen(buf) - 1] = '\0';
	if (strstr(buf, ",,") || !*trim(buf) || *trim(buf) == ',' ||
	    buf[strlen(buf) - 1] == ',') {
		errf("empty item in list '%s'", val);
		return -EINVAL;
	}
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (!*tok) {
			errf("empty item in list '%s'", val);
			return -EINVAL;
		}
		ret = fn(ctx, tok, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_abs_path(struct sm_config *cfg, const struct key_def *def,
			  const char *val, char *err, size_t errlen)
{
	char *dst = (char *)cfg + def->off;

	if (val[0] != '/') {
		errf("%s must be an absolute path, not '%s'", def->name, val);
		return -EINVAL;
	}
	if (strlen(val) >= def->size - 32) { /* room for the pin names */
		errf("%s is too long", def->name);
		return -EINVAL;
	}
	strcpy(dst, val);
	/* no trailing slashes: paths are joined with '/' */
	for (size_t n = strlen(dst); n > 1 && dst[n - 1] == '/'; n--)
		dst[n - 1] = '\0';
	return 0;
}

static int parse_metrics(struct sm_config *cfg, const struct key_def *def,
			 const char *val, char *err, size_t errlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&cfg->metrics_addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&cfg->metrics_addr;
	const char *colon = strrchr(val, ':');
	char host[64];
	char *end;
	long port;

	(void)def;
	memset(&cfg->metrics_addr, 0, sizeof(cfg->metrics_addr));
	cfg->metrics_addr_len = 0;
	if (!strcmp(val, "off")) {
		cfg->metrics[0] = '\0';
		return 0;
	}
	if (!colon || colon == val || (size_t)(colon - val) >= sizeof(host))
		goto bad;
	if (!isdigit((unsigned char)colon[1]) || strlen(colon + 1) > 5)
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		goto bad;
	memcpy(host, val, colon - val);
	host[colon - val] = '\0';
	/* [::1]:9464 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		cfg->metrics_addr_len = sizeof(*sin6);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		cfg->metrics_addr_len = sizeof(*sin);
	} else {
		goto bad;
	}
	if (strlen(val) >= sizeof(cfg->metrics))
		goto bad;
	strcpy(cfg->metrics, val);
	return 0;
bad:
	errf("metrics must be 'off' or ADDRESS:PORT (127.0.0.1:9464, [::1]:9464), not '%s'",
	     val);
	return -EINVAL;
}

static int parse_log_level(struct sm_config *cfg, const struct key_def *def,
			   const char *val, char *err, size_t errlen)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)def;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(val, names[i])) {
			cfg->log_level = (enum sm_log_level)i;
			return 0;
		}
	}
	errf("log_level must be error, warn, info or debug, not '%s'", val);
	return -EINVAL;
}

static int parse_on_exit(struct sm_config *cfg, const struct key_def *def,
			 const char *val, char *err, size_t errlen)
{
	(void)def;
	if (!strcmp(val, "keep"))
		cfg->on_exit = SM_ON_EXIT_KEEP;
	else if (!strcmp(val, "detach"))
		cfg->on_exit = SM_ON_EXIT_DETACH;
	else {
		errf("on_exit must be keep or detach, not '%s'", val);
		return -EINVAL;
	}
	return 0;
}

static int parse_run_group(struct sm_config *cfg, const struct key_def *def,
			   const char *val, char *err, size_t errlen)
{
	struct group *gr;
	char *end;
	long gid;

	(void)def;
	cfg->run_gid = -1;
	cfg->run_group[0] = '\0';
	if (!*val)
		return 0;
	if (strlen(val) >= sizeof(cfg->run_group)) {
		errf("run_group '%.64s...' is too long", val);
		return -EINVAL;
	}
	errno = 0;
	gid = strtol(val, &end, 10);
	if (isdigit((unsigned char)*val) && !*end && !errno) {
		if (gid == 0 || gid > 0x7fffffffL) {
			errf("run_group must be a group other than root's, not '%s'",
			     val);
			return -EINVAL;
		}
	} else {
		gr = getgrnam(val);
		if (!gr) {
			errf("run_group: there is no group '%s' on this system (getent group %s)",
			     val, val);
			return -EINVAL;
		}
		if (!gr->gr_gid) {
			errf("run_group must be a group other than root's, not '%s'",
			     val);
			return -EINVAL;
		}
		gid = gr->gr_gid;
	}
	strcpy(cfg->run_group, val);
	cfg->run_gid = gid;
	return 0;
}

static int parse_compat(struct sm_config *cfg, const struct key_def *def,
			const char *val, char *err, size_t errlen)
{
	(void)def;
	if (!strcmp(val, "strict"))
		cfg->compat_fast = false;
	else if (!strcmp(val, "fast"))
		cfg->compat_fast = true;
	else {
		errf("compat must be strict or fast, not '%s'", val);
		return -EINVAL;
	}
	return 0;
}

static int parse_mesh_mode(struct sm_config *cfg, const struct key_def *def,
			   const char *val, char *err, size_t errlen)
{
	(void)def;
	if (!strcmp(val, "iptables"))
		cfg->mesh_connect = false;
	else if (!strcmp(val, "connect"))
		cfg->mesh_connect = true;
	else {
		errf("mode must be iptables or connect, not '%s'", val);
		return -EINVAL;
	}
	return 0;
}

static int add_cgroup(void *ctx, const char *item, char *err, size_t errlen)
{
	struct sm_config *cfg = ctx;
	const char *p;

	if (item[0] == '/') {
		static const char *const mounts[] = {"/sys/fs/cgroup/unified/",
						     "/sys/fs/cgroup/"};
		const char *rel = item + strspn(item, "/");

		for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]);
		     i++) {
			if (!strncmp(item, mounts[i], strlen(mounts[i]))) {
				rel = item + strlen(mounts[i]);
				break;
			}
		}
		errf("cgroup '%s' must be relative to the cgroup2 mount (write '%s')",
		     item, rel);
		return -EINVAL;
	}
	for (p = item; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("._-/:@", *p)) {
			errf("cgroup '%s' has a character that is not allowed: '%c'",
			     item, *p);
			return -EINVAL;
		}
	}
	if (!strcmp(item, ".") || !strcmp(item, "..") ||
	    !strncmp(item, "../", 3) || strstr(item, "/../") ||
	    strstr(item, "/./") || strstr(item, "//") ||
	    item[strlen(item) - 1] == '/' ||
	    (strlen(item) >= 3 && !strcmp(item + strlen(item) - 3, "/..")) ||
	    (strlen(item) >= 2 && !strcmp(item + strlen(item) - 2, "/.")) ||
	    !strncmp(item, "./", 2)) {
		errf("cgroup '%s' is not a plain path below the cgroup2 mount",
		     item);
		return -EINVAL;
	}
	if (strlen(item) >= SM_CGROUP_LEN) {
		errf("cgroup '%s' is longer than %d characters", item,
		     SM_CGROUP_LEN - 1);
		return -EINVAL;
	}
	for (int i = 0; i < cfg->n_cgroups; i++) {
		if (!strcmp(cfg->cgroups[i], item)) {
			errf("cgroup '%s' is listed twice", item);
			return -EINVAL;
		}
	}
	if (cfg->n_cgroups == SM_CGROUPS_MAX) {
		errf("more than %d cgroups", SM_CGROUPS_MAX);
		return -EINVAL;
	}
	strcpy(cfg->cgroups[cfg->n_cgroups++], item);
	return 0;
}

static int parse_cgroups(struct sm_config *cfg, const struct key_def *def,
			 const char *val, char *err, size_t errlen)
{
	int ret;

	cfg->n_cgroups = 0;
	ret = for_each_item(val, err, errlen, add_cgroup, cfg);
	if (!ret && !cfg->n_cgroups) {
		errf("%s needs at least one cgroup", def->name);
		ret = -EINVAL;
	}
	return ret;
}

static int parse_port(const char *s, __u16 *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -EINVAL;
	*out = (__u16)v;
	return 0;
}

int sm_parse_port_range(const char *s, struct sm_port_range *out, char *err,
			size_t errlen)
{
	char buf[32], *dash;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (dash) {
		*dash = '\0';
		if (parse_port(trim(buf), &out->lo) ||
		    parse_port(trim(dash + 1), &out->hi))
			goto bad;
		if (out->lo > out->hi) {
			errf("port range '%s' runs backwards", s);
			return -EINVAL;
		}
		return 0;
	}
	if (parse_port(buf, &out->lo))
		goto bad;
	out->hi = out->lo;
	return 0;
bad:
	errf("'%s' is not a port (1-65535) or a range of ports (8000-8100)", s);
	return -EINVAL;
}

struct range_list {
	struct sm_port_range *r;
	int *n;
};

static int add_range(void *ctx, const char *item, char *err, size_t errlen)
{
	struct range_list *l = ctx;

	if (*l->n == SM_RANGES_MAX) {
		errf("more than %d ports and ranges", SM_RANGES_MAX);
		return -EINVAL;
	}
	if (sm_parse_port_range(item, &l->r[*l->n], err, errlen))
		return -EINVAL;
	(*l->n)++;
	return 0;
}

static int parse_ports(struct sm_config *cfg, const struct key_def *def,
		       const char *val, char *err, size_t errlen)
{
	struct range_list l = {cfg->ports, &cfg->n_ports};

	(void)def;
	cfg->n_ports = 0;
	cfg->ports_all = !strcmp(val, "*");
	if (cfg->ports_all)
		return 0;
	if (!*val) {
		errf("ports is empty: write '*' for every port");
		return -EINVAL;
	}
	return for_each_item(val, err, errlen, add_range, &l);
}

static int parse_exclude_ports(struct sm_config *cfg, const struct key_def *def,
			       const char *val, char *err, size_t errlen)
{
	struct range_list l = {cfg->exclude_ports, &cfg->n_exclude_ports};

	(void)def;
	cfg->n_exclude_ports = 0;
	return for_each_item(val, err, errlen, add_range, &l);
}

static int parse_mesh_x_out(struct sm_config *cfg, const struct key_def *def,
			    const char *val, char *err, size_t errlen)
{
	struct range_list l = {cfg->mesh_x_out, &cfg->n_mesh_x_out};

	(void)def;
	cfg->n_mesh_x_out = 0;
	return for_each_item(val, err, errlen, add_range, &l);
}

static int parse_mesh_x_in(struct sm_config *cfg, const struct key_def *def,
			   const char *val, char *err, size_t errlen)
{
	struct range_list l = {cfg->mesh_x_in, &cfg->n_mesh_x_in};

	(void)def;
	cfg->n_mesh_x_in = 0;
	return for_each_item(val, err, errlen, add_range, &l);
}

int sm_parse_cidr(const char *s, struct sm_cidr *out, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned char a[16];
	long len;
	int max, v4;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	v4 = inet_pton(AF_INET, buf, a) == 1;
	if (!v4 && inet_pton(AF_INET6, buf, a) != 1)
		goto bad;
	max = v4 ? 32 : 128;
	len = max;
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			goto bad_len;
		errno = 0;
		len = strtol(slash + 1, &end, 10);
		if (errno || *end || len < 0 || len > max)
			goto bad_len;
	}
	if (v4) {
		__u32 be;

		memcpy(&be, a, 4);
		sm_addr_from_v4(out->addr, be);
		out->prefixlen = 96 + (__u32)len;
	} else {
		memcpy(out->addr, a, 16);
		out->prefixlen = (__u32)len;
	}
	/* host bits set is a typo more often than not: say so */
	for (int bit = (int)out->prefixlen; bit < 128; bit++) {
		const unsigned char *bytes = (const unsigned char *)out->addr;

		if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
			errf("'%s' has host bits set beyond /%ld", s, len);
			return -EINVAL;
		}
	}
	return 0;
bad_len:
	errf("'%s': prefix length must be 0-%d", s, max);
	return -EINVAL;
bad:
	errf("'%s' is not an IPv4 or IPv6 address or prefix (127.0.0.0/8, ::1/128)",
	     s);
	return -EINVAL;
}

struct cidr_list {
	struct sm_cidr *c;
	int *n;
};

static int add_cidr(void *ctx, const char *item, char *err, size_t errlen)
{
	struct cidr_list *l = ctx;

	if (*l->n == SM_CONF_CIDRS) {
		errf("more than %d prefixes", SM_CONF_CIDRS);
		return -EINVAL;
	}
	if (sm_parse_cidr(item, &l->c[*l->n], err, errlen))
		return -EINVAL;
	(*l->n)++;
	return 0;
}

static int parse_cidrs(struct sm_config *cfg, const struct key_def *def,
		       const char *val, char *err, size_t errlen)
{
	struct cidr_list l = {cfg->cidrs, &cfg->n_cidrs};

	cfg->n_cidrs = 0;
	if (for_each_item(val, err, errlen, add_cidr, &l))
		return -EINVAL;
	if (!cfg->n_cidrs) {
		errf("%s is empty: nothing could be accelerated", def->name);
		return -EINVAL;
	}
	return 0;
}

static int parse_unique_cidrs(struct sm_config *cfg, const struct key_def *def,
			      const char *val, char *err, size_t errlen)
{
	struct cidr_list l = {cfg->node_unique_cidrs,
			      &cfg->n_node_unique_cidrs};

	(void)def;
	cfg->n_node_unique_cidrs = 0;
	return for_each_item(val, err, errlen, add_cidr, &l);
}

static int parse_u32(struct sm_config *cfg, const struct key_def *def,
		     const char *val, char *err, size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (!isdigit((unsigned char)*val) || errno || *end || v < def->min ||
	    v > def->max) {
		errf("%s must be a whole number from %ld to %ld, not '%s'",
		     def->name, def->min, def->max, val);
		return -EINVAL;
	}
	*(__u32 *)((char *)cfg + def->off) = (__u32)v;
	return 0;
}

/* a shared constant as a default's text */
#define SM_STR_(x) #x
#define SM_STR(x)  SM_STR_(x)

#define STR_FIELD(f)                          \
	.off = offsetof(struct sm_config, f), \
	.size = sizeof(((struct sm_config *)0)->f)

static const struct key_def keys[] = {
	{.section = "daemon",
	 .name = "pin_dir",
	 .defval = "/sys/fs/bpf/sockmesh",
	 .parse = parse_abs_path,
	 STR_FIELD(pin_dir)},
	{.section = "daemon",
	 .name = "run_dir",
	 .defval = "/run/sockmesh",
	 .parse = parse_abs_path,
	 STR_FIELD(run_dir)},
	{.section = "daemon",
	 .name = "metrics",
	 .defval = "127.0.0.1:9464",
	 .parse = parse_metrics},
	{.section = "daemon",
	 .name = "log_level",
	 .defval = "info",
	 .parse = parse_log_level},
	{.section = "daemon",
	 .name = "on_exit",
	 .defval = "keep",
	 .parse = parse_on_exit},
	{.section = "daemon",
	 .name = "run_group",
	 .defval = "",
	 .parse = parse_run_group},
	{.section = "accelerate",
	 .name = "cgroups",
	 .defval = "sockmesh",
	 .parse = parse_cgroups},
	{.section = "accelerate",
	 .name = "ports",
	 .defval = "*",
	 .parse = parse_ports},
	{.section = "accelerate",
	 .name = "exclude_ports",
	 .defval = "",
	 .parse = parse_exclude_ports},
	{.section = "accelerate",
	 .name = "cidrs",
	 .defval = "127.0.0.0/8, ::1/128",
	 .parse = parse_cidrs},
	{.section = "accelerate",
	 .name = "node_unique_cidrs",
	 .defval = "",
	 .parse = parse_unique_cidrs},
	{.section = "accelerate",
	 .name = "max_sockets",
	 .defval = SM_STR(SM_SOCKETS_DEFAULT),
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, max_sockets),
	 .min = 1,
	 .max = 1 << 24},
	{.section = "accelerate",
	 .name = "short_conn_msgs",
	 .defval = SM_STR(SM_SHORT_MSGS_DEFAULT),
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, short_conn_msgs),
	 .min = 0,
	 .max = SM_SHORT_MSGS_MAX},
	{.section = "accelerate",
	 .name = "small_write_gap_us",
	 .defval = SM_STR(SM_BULK_GAP_US),
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, small_write_gap_us),
	 .min = 1,
	 .max = 1000000},
	{.section = "accelerate",
	 .name = "compat",
	 .defval = "strict",
	 .parse = parse_compat},
	{.section = "mesh",
	 .name = "mode",
	 .defval = "iptables",
	 .parse = parse_mesh_mode},
	{.section = "mesh",
	 .name = "sidecar_uid",
	 .defval = SM_STR(SM_MESH_DEFAULT_UID),
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, mesh_uid),
	 .min = 0,
	 .max = 4294967294L},
	{.section = "mesh",
	 .name = "outbound_port",
	 .defval = "15001",
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, mesh_outbound_port),
	 .min = 1,
	 .max = 65535},
	{.section = "mesh",
	 .name = "inbound_port",
	 .defval = "15006",
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, mesh_inbound_port),
	 .min = 1,
	 .max = 65535},
	{.section = "mesh",
	 .name = "readiness_port",
	 .defval = "15021",
	 .parse = parse_u32,
	 .off = offsetof(struct sm_config, mesh_readiness_port),
	 .min = 1,
	 .max = 65535},
	{.section = "mesh",
	 .name = "exclude_outbound_ports",
	 .defval = "",
	 .parse = parse_mesh_x_out},
	{.section = "mesh",
	 .name = "exclude_inbound_ports",
	 .defval = "15008, 15020, 15021, 15090",
	 .parse = parse_mesh_x_in},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(N_KEYS <= SM_KEYS_MAX, "raise SM_KEYS_MAX");

static int set_key(struct sm_config *cfg, size_t i, const char *val, char *err,
		   size_t errlen)
{
	int ret;

	if (strlen(val) >= sizeof(cfg->text[i])) {
		errf("value of %s is too long", keys[i].name);
		return -EINVAL;
	}
	ret = keys[i].parse(cfg, &keys[i], val, err, errlen);
	if (!ret)
		strcpy(cfg->text[i], val);
	return ret;
}

void sm_config_defaults(struct sm_config *cfg)
{
	char err[SM_ERR_LEN];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_KEYS; i++) {
		/* the defaults are valid by construction; a unit test says so */
		if (set_key(cfg, i, keys[i].defval, err, sizeof(err)))
			abort();
	}
}

/*
 * inih reads through line_reader() so that this file, not inih, decides
 * what a line is: inih's buffer holds 199 characters and would cut a longer
 * line into pieces, each parsed as a line of its own. Here a line that does
 * not fit is an error at its own number, a section header is checked where
 * it stands, and an indented line continues the list of the key above it.
 */
struct parse_ctx {
	struct sm_config *cfg;
	FILE *f;
	char *buf; /* getline() buffer */
	size_t cap;
	int lineno;	   /* of the line inih is working on */
	bool continuation; /* that line is indented: it continues a key */
	int last_key;	   /* index of the key set last, or -1 */
	char section[64];  /* the current section, as the reader saw it */
	int err_line;	   /* of the first error found here */
	int key_line[SM_KEYS_MAX]; /* where each key was set, 0: not set */
	char msg[SM_ERR_LEN];	   /* that error, without file:line */
};

static void ctx_error(struct parse_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ctx_error(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx->msg[0])
		return;
	ctx->err_line = ctx->lineno;
	va_start(ap, fmt);
	vsnprintf(ctx->msg, sizeof(ctx->msg), fmt, ap);
	va_end(ap);
}

static bool section_known(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(name, keys[i].section))
			return true;
	return false;
}

static char *line_reader(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	ssize_t len;
	char *start;

	if (ctx->msg[0])
		return NULL; /* stop at the first error */
	len = getline(&ctx->buf, &ctx->cap, ctx->f);
	if (len < 0)
		return NULL;
	ctx->lineno++;
	if (len > num - 1) {
		ctx_error(
			ctx,
			"line is longer than %d characters: continue a long list on indented lines",
			num - 2);
		return NULL;
	}
	memcpy(str, ctx->buf, len + 1);
	start = str + strspn(str, " \t\r\n");
	ctx->continuation = start > str && *start && !strchr(";#", *start);
	if (*start == '[') {
		char *close = strchr(start, ']');

		if (!close || (size_t)(close - start) > sizeof(ctx->section)) {
			ctx_error(ctx,
				  "syntax error: a section header is [name]");
			return NULL;
		}
		snprintf(ctx->section, sizeof(ctx->section), "%.*s",
			 (int)(close - start - 1), start + 1);
		if (!section_known(ctx->section)) {
			ctx_error(
				ctx,
				"unknown section [%s] (known: [daemon], [accelerate])",
				ctx->section);
			return NULL;
		}
		/* inih would drop the rest of the line, a key with it */
		close += 1 + strspn(close + 1, " \t\r\n");
		if (*close && !strchr(";#", *close)) {
			ctx_error(
				ctx,
				"syntax error: '%s' after [%s]: a section header is alone on its line",
				trim(close), ctx->section);
			return NULL;
		}
		ctx->last_key = -1;
	}
	return str;
}

/* An indented line after a list key: append its items to the list. */
static int continue_key(struct parse_ctx *ctx, const char *value)
{
	size_t i = (size_t)ctx->last_key;
	char joined[sizeof(ctx->cfg->text[0])], err[SM_ERR_LEN];
	const char *prev = ctx->cfg->text[i];
	size_t n = strlen(prev);

	while (n && (prev[n - 1] == ',' || prev[n - 1] == ' '))
		n--;
	if ((size_t)snprintf(joined, sizeof(joined), "%.*s, %s", (int)n, prev,
			     value) >= sizeof(joined)) {
		ctx_error(ctx, "value of %s is too long", keys[i].name);
		return 0;
	}
	if (set_key(ctx->cfg, i, joined, err, sizeof(err))) {
		ctx_error(ctx, "%s", err);
		return 0;
	}
	return 1;
}

static bool is_list_key(size_t i)
{
	static const char *const lists[] = {"cgroups", "ports", "exclude_ports",
					    "cidrs", "node_unique_cidrs"};

	for (size_t j = 0; j < sizeof(lists) / sizeof(lists[0]); j++)
		if (!strcmp(keys[i].name, lists[j]))
			return true;
	return false;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parse_ctx *ctx = user;
	char err[SM_ERR_LEN] = "";

	if (ctx->msg[0])
		return 1; /* report the first error only */
	if (ctx->continuation && ctx->last_key >= 0 &&
	    !strcmp(name, keys[ctx->last_key].name)) {
		if (is_list_key((size_t)ctx->last_key))
			return continue_key(ctx, value);
		ctx_error(
			ctx,
			"%s is not a list: it cannot continue on an indented line",
			name);
		return 0;
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(section, keys[i].section) ||
		    strcmp(name, keys[i].name))
			continue;
		if (ctx->cfg->seen[i]) {
			ctx_error(ctx, "%s is set twice in [%s]", name,
				  section);
			return 0;
		}
		ctx->cfg->seen[i] = true;
		ctx->key_line[i] = ctx->lineno;
		if (set_key(ctx->cfg, i, value, err, sizeof(err))) {
			ctx_error(ctx, "%s", err);
			return 0;
		}
		ctx->last_key = (int)i;
		return 1;
	}
	if (!*section)
		ctx_error(
			ctx,
			"key '%s' is outside of any section ([daemon] or [accelerate])",
			name);
	else
		ctx_error(ctx, "unknown key '%s' in [%s]", name, section);
	return 0;
}

int sm_config_load_file(struct sm_config *cfg, FILE *f, const char *name,
			char *err, size_t errlen)
{
	struct parse_ctx ctx = {.cfg = cfg, .f = f, .last_key = -1};
	int line;

	sm_config_defaults(cfg);
	snprintf(cfg->path, sizeof(cfg->path), "%s", name);
	line = ini_parse_stream(line_reader, &ctx, handler, &ctx);
	free(ctx.buf);
	if (line < 0 || ferror(f)) {
		errf("%s: cannot read the file", name);
		return -EIO;
	}
	/* the first error wins: inih's (syntax) or ours, whichever is first */
	if (line > 0 && (!ctx.msg[0] || line < ctx.err_line)) {
		errf("%s:%d: syntax error: expected [section] or key = value",
		     name, line);
		return -EINVAL;
	}
	if (ctx.msg[0]) {
		errf("%s:%d: %s", name, ctx.err_line, ctx.msg);
		return -EINVAL;
	}
	if (cfg->mesh_outbound_port == cfg->mesh_inbound_port ||
	    cfg->mesh_outbound_port == cfg->mesh_readiness_port ||
	    cfg->mesh_inbound_port == cfg->mesh_readiness_port) {
		/* at the last of the three that the file set */
		line = 0;
		for (size_t i = 0; i < N_KEYS; i++)
			if (!strcmp(keys[i].section, "mesh") &&
			    strstr(keys[i].name, "_port") &&
			    !strstr(keys[i].name, "ports") &&
			    ctx.key_line[i] > line)
				line = ctx.key_line[i];
		errf("%s:%d: [mesh] outbound_port (%u), inbound_port (%u) and "
		     "readiness_port (%u) must be three different ports",
		     name, line, cfg->mesh_outbound_port,
		     cfg->mesh_inbound_port, cfg->mesh_readiness_port);
		return -EINVAL;
	}
	return 0;
}

int sm_config_load(struct sm_config *cfg, const char *path, char *err,
		   size_t errlen)
{
	FILE *f = fopen(path, "r");
	int ret;

	if (!f) {
		ret = -errno;
		errf("%s: cannot open: %s", path, strerror(errno));
		return ret;
	}
	ret = sm_config_load_file(cfg, f, path, err, errlen);
	fclose(f);
	return ret;
}

int sm_config_load_default(struct sm_config *cfg, const char *path, char *err,
			   size_t errlen)
{
	if (path)
		return sm_config_load(cfg, path, err, errlen);
	if (access(SM_CONF_DEFAULT, F_OK) == 0)
		return sm_config_load(cfg, SM_CONF_DEFAULT, err, errlen);
	sm_config_defaults(cfg);
	strcpy(cfg->path, "(built-in defaults)");
	return 0;
}

/* The longest line line_reader() takes, '\n' aside. */
#define LINE_MAX_LEN (INI_MAX_LINE - 2)

/*
 * May a list go on on the next line after the comma at @p? Best (2) where
 * reading it back joins the two lines into the same text: an item ends
 * before the comma, one space and an item follow. Then (1) where a space
 * follows: the text does not grow. Last (0) at any comma.
 */
static bool list_break(const char *p, int best)
{
	if (*p != ',' || !p[1])
		return false;
	if (best == 2)
		return !isspace((unsigned char)p[-1]) && p[1] == ' ' && p[2] &&
		       !isspace((unsigned char)p[2]);
	return best == 0 || p[1] == ' ';
}

/*
 * A list too long for one line goes on indented lines, as a user writes
 * it: line_reader() refuses a longer line. Each line takes as many items
 * as fit. Read back, it gives the same items, the same text but for
 * whitespace.
 */
static void print_list(FILE *out, const char *name, const char *text)
{
	size_t width = strlen(name) + 3; /* "name = " */
	const char *p = text, *cut = NULL;

	fprintf(out, "%s = ", name);
	while (width + strlen(p) > LINE_MAX_LEN) {
		for (int best = 2; best >= 0 && !cut; best--)
			for (size_t i = 1; i <= LINE_MAX_LEN - width && p[i];
			     i++)
				if (list_break(p + i, best))
					cut = p + i;
		if (!cut)
			break; /* an item longer than a line */
		fprintf(out, "%.*s\n\t", (int)(cut - p), p);
		p = cut + 1 + strspn(cut + 1, " ");
		width = 1;
		cut = NULL;
	}
	fprintf(out, "%s\n", p);
}

void sm_config_print(const struct sm_config *cfg, FILE *out)
{
	const char *section = "";

	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(section, keys[i].section)) {
			section = keys[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		if (is_list_key(i))
			print_list(out, keys[i].name, cfg->text[i]);
		else
			fprintf(out, "%s = %s\n", keys[i].name, cfg->text[i]);
	}
}
