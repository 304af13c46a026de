// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* rundir.c - see rundir.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rundir.h"

int sm_run_path(char *buf, size_t len, const char *run_dir, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", run_dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int sm_run_lock_holder(const char *run_dir, pid_t *pid, char *cfg, size_t len)
{
	char path[PATH_MAX], buf[2 * PATH_MAX + 32];
	char *conf = NULL, *pin = NULL, *end;
	ssize_t n;
	int fd, ret;

	*pid = 0;
	if (cfg && len)
		cfg[0] = '\0';
	ret = sm_run_path(path, sizeof(path), run_dir, SM_RUN_LOCK);
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!flock(fd, LOCK_SH | LOCK_NB)) {
		close(fd); /* nobody holds it: no daemon */
		return 0;
	}
	if (errno != EWOULDBLOCK) {
		ret = -errno;
		close(fd);
		return ret;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n < 0)
		return 1; /* held, unreadable: a daemon all the same */
	buf[n] = '\0';
	conf = strchr(buf, '\n');
	if (conf) {
		*conf++ = '\0';
		pin = strchr(conf, '\n');
	}
	if (pin) {
		*pin++ = '\0';
		if ((end = strchr(pin, '\n')))
			*end = '\0';
	}
	*pid = atoi(buf) > 0 ? atoi(buf) : 0;
	if (cfg && len && conf && *conf)
		snprintf(cfg, len, "%s, pin_dir %s", conf,
			 pin && *pin ? pin : "?");
	return 1;
}

pid_t sm_daemon_pid(const struct sm_pins *pins, const char *run_dir)
{
	pid_t pid;

	if (pins->lock_fd >= 0) /* we are the daemon */
		return getpid();
	if (sm_run_lock_holder(run_dir, &pid, NULL, 0) == 1)
		return pid > 0 ? pid : -1;
	return sm_pins_locked(pins) ? -1 : 0;
}

int sm_ctl_request(const char *run_dir, const char *request, char *out,
		   size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t used = 0, rlen = strlen(request);
	int fd = -1, ret;
	ssize_t n;

	if (!len)
		return -EINVAL;
	out[0] = '\0';
	ret = sm_run_path(sa.sun_path, sizeof(sa.sun_path), run_dir,
			  SM_CTL_SOCK);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, request, rlen, MSG_NOSIGNAL) != (ssize_t)rlen ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		ret = -errno;
		goto out;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char sink[512];

		ret = poll(&p, 1, SM_CTL_TIMEOUT * 1000);
		if (ret <= 0) {
			ret = ret ? -errno : -ETIMEDOUT;
			goto out;
		}
		if (used + 1 < len)
			n = read(fd, out + used, len - used - 1);
		else
			n = read(fd, sink, sizeof(sink));
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (!n)
			break;
		if (used + 1 < len)
			used += n;
	}
	out[used] = '\0';
	if (!strncmp(out, SM_CTL_OK, strlen(SM_CTL_OK))) {
		memmove(out, out + strlen(SM_CTL_OK),
			used - strlen(SM_CTL_OK) + 1);
		ret = 0;
	} else if (!strncmp(out, SM_CTL_ERROR, strlen(SM_CTL_ERROR))) {
		memmove(out, out + strlen(SM_CTL_ERROR),
			used - strlen(SM_CTL_ERROR) + 1);
		ret = -EREMOTEIO;
	} else {
		ret = -EPROTO;
	}
out:
	close(fd);
	return ret;
}

int sm_config_file_safe(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st)) {
		int ret = -errno;

		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(
			err, errlen,
			"%s: writable by %s (mode %04o): refused, it decides what sockmeshd attaches to (chmod go-w %s)",
			path,
			(st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH)
				? "group and others"
			: st.st_mode & S_IWGRP ? "group"
					       : "others",
			st.st_mode & 07777, path);
		return -EPERM;
	}
	return 0;
}

int sm_private_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (stat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* a shared directory (/tmp) is not ours to tighten */
	if (st.st_mode & (S_ISVTX | S_IWOTH))
		return -EPERM;
	if ((st.st_mode & 077) && chmod(dir, 0700))
		return -errno;
	return 0;
}
