// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Send side: every way of writing to a TCP socket delivers the same bytes
 * and returns the same values accelerated as on plain TCP; MSG_MORE and
 * TCP_CORK; MSG_DONTWAIT against a receiver that does not read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conform.h"

enum method {
	M_WRITE,
	M_SEND,
	M_SENDMSG_1,
	M_SENDMSG_1024,
	M_WRITEV,
	M_SENDMMSG,
	M_SENDFILE,
	M_SPLICE,
};

struct send_arg {
	enum method m;
	size_t size; /* total bytes */
	unsigned seed;
};

#define CALL_MAX (48 * 1024) /* bytes per call: >= SM_BULK_MSG_MAX */

/* Bytes of iovec @i of a 1024-iovec sendmsg: 1..200, ~100 KiB in all. */
static size_t iov_len_1024(int i)
{
	return 1 + (i * 37) % 200;
}

static int temp_file(struct result *r, size_t size, unsigned seed)
{
	char path[] = "/tmp/sockmesh-conf-XXXXXX";
	unsigned char buf[65536];
	int fd = mkstemp(path);

	if (fd < 0) {
		res_broken(r, "mkstemp: %s", strerror(errno));
		return -1;
	}
	unlink(path); /* ours alone, gone when closed */
	for (size_t off = 0; off < size;) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		pat_fill(buf, n, off, seed);
		if (write(fd, buf, n) != (ssize_t)n) {
			res_broken(r, "write temp file: %s", strerror(errno));
			close(fd);
			return -1;
		}
		off += n;
	}
	return fd;
}

/* One call of method @m from offset @off; returns what the call returned
 * (for sendmmsg: bytes, with *msgs the messages it reported). */
static ssize_t send_call(struct result *r, enum method m, int fd, size_t off,
			 size_t left, unsigned seed, int file_fd, int *msgs)
{
	static unsigned char buf[256 * 1024];
	size_t n = left < CALL_MAX ? left : CALL_MAX;
	struct iovec iov[1024];
	struct msghdr mh = {.msg_iov = iov};
	ssize_t ret;

	switch (m) {
	case M_WRITE:
		pat_fill(buf, n, off, seed);
		return write(fd, buf, n);
	case M_SEND:
		pat_fill(buf, n, off, seed);
		return send(fd, buf, n, MSG_NOSIGNAL);
	case M_SENDMSG_1:
		pat_fill(buf, n, off, seed);
		iov[0] = (struct iovec){buf, n};
		mh.msg_iovlen = 1;
		return sendmsg(fd, &mh, MSG_NOSIGNAL);
	case M_SENDMSG_1024: {
		size_t used = 0;
		int k;

		for (k = 0; k < 1024 && used < left; k++) {
			size_t l = iov_len_1024(k);

			if (l > left - used)
				l = left - used;
			/* each iovec its own place in buf, gaps between them */
			iov[k] = (struct iovec){buf + used + k, l};
			pat_fill(iov[k].iov_base, l, off + used, seed);
			used += l;
		}
		mh.msg_iovlen = k;
		return sendmsg(fd, &mh, MSG_NOSIGNAL);
	}
	case M_WRITEV: {
		size_t used = 0;
		int k;

		for (k = 0; k < 16 && used < left; k++) {
			size_t l = 1 + (k * 7919) % 8000;

			if (l > left - used)
				l = left - used;
			iov[k] = (struct iovec){buf + used, l};
			used += l;
		}
		pat_fill(buf, used, off, seed);
		return writev(fd, iov, k);
	}
	case M_SENDMMSG: {
		struct mmsghdr mm[8];
		size_t used = 0;
		int k, j = 0;

		memset(mm, 0, sizeof(mm));
		for (k = 0; k < 8 && used < left; k++) {
			mm[k].msg_hdr.msg_iov = &iov[j];
			for (int part = 0; part < 4 && used < left; part++) {
				size_t l = 1000 + (k * 4 + part) * 300;

				if (l > left - used)
					l = left - used;
				iov[j++] = (struct iovec){buf + used, l};
				mm[k].msg_hdr.msg_iovlen++;
				used += l;
			}
		}
		pat_fill(buf, used, off, seed);
		*msgs = sendmmsg(fd, mm, k, MSG_NOSIGNAL);
		if (*msgs < 0)
			return -1;
		ret = 0;
		for (int i = 0; i < *msgs; i++)
			ret += mm[i].msg_len;
		return ret;
	}
	case M_SENDFILE: {
		off_t o = off;

		return sendfile(fd, file_fd, &o, left);
	}
	case M_SPLICE: {
		int p[2];

		if (pipe(p))
			return -1;
		n = left < 65536 ? left : 65536;
		pat_fill(buf, n, off, seed);
		if (write(p[1], buf, n) != (ssize_t)n) {
			res_broken(r, "fill pipe: %s", strerror(errno));
			ret = -1;
		} else {
			ret = 0;
			while ((size_t)ret < n) {
				ssize_t s = splice(p[0], NULL, fd, NULL,
						   n - ret, SPLICE_F_MOVE);

				if (s <= 0)
					break;
				ret += s;
			}
		}
		close(p[0]);
		close(p[1]);
		return ret;
	}
	}
	return -1;
}

static int send_scenario(struct result *r, void *arg)
{
	const struct send_arg *a = arg;
	struct reader rd = {.seed = a->seed, .r = r};
	struct pair_opt po = {0};
	int c, s, file_fd = -1, calls = 0, msgs = 0, msgs_total = 0;
	size_t off = 0;
	long first_ret = -1;

	if (scen_pair(r, &c, &s, &po))
		return 1;
	if (a->m == M_SENDFILE &&
	    (file_fd = temp_file(r, a->size, a->seed)) < 0)
		return 1;
	rd.fd = s;
	reader_start(&rd);
	while (off < a->size) {
		ssize_t n = send_call(r, a->m, c, off, a->size - off, a->seed,
				      file_fd, &msgs);

		if (n <= 0) {
			res_same(r, "send_errno", errno);
			break;
		}
		if (first_ret < 0)
			first_ret = n;
		off += n;
		msgs_total += msgs;
		calls++;
	}
	shutdown(c, SHUT_WR);
	reader_join(&rd);
	res_same(r, "bytes_sent", off);
	res_same(r, "first_call_returned", first_ret);
	/* sendfile and splice may return short counts by design */
	if (a->m == M_SENDFILE || a->m == M_SPLICE)
		res_info(r, "calls", calls);
	else
		res_same(r, "calls", calls);
	if (a->m == M_SENDMMSG)
		res_same(r, "sendmmsg_msgs", msgs_total);
	res_same(r, "rx_bytes", rd.got);
	res_same(r, "rx_first_bad_byte", rd.bad_at);
	res_same(r, "rx_errno", rd.err);
	res_same(r, "rx_hash_low32", rd.hash & 0xffffffff);
	close(c);
	close(s);
	if (file_fd >= 0)
		close(file_fd);
	return 0;
}

static void send_case(struct env *e, const char *what, enum method m,
		      size_t size)
{
	struct send_arg a = {.m = m, .size = size, .seed = 11 + m};
	struct diff d;

	if (conf_start(e, ""))
		return;
	if (diff_run(e, what, send_scenario, &a, &d, NULL))
		return;
	ASSERT_EQ(res_get(&d.accel, "rx_bytes"), size, "every byte arrived");
	ASSERT_EQ(d.da.sockets_added, 2, "both ends accelerated");
	ASSERT_EQ(d.da.bytes_redirected, size, "every byte redirected");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

TEST(send_write)
{
	send_case(e, "write", M_WRITE, 1 << 20);
}

TEST(send_send)
{
	send_case(e, "send", M_SEND, 1 << 20);
}

TEST(send_sendmsg_1_iovec)
{
	send_case(e, "sendmsg 1 iovec", M_SENDMSG_1, 1 << 20);
}

TEST(send_sendmsg_1024_iovecs)
{
	/* two calls of 1024 iovecs and a short third */
	send_case(e, "sendmsg 1024 iovecs", M_SENDMSG_1024, 250000);
}

TEST(send_writev)
{
	send_case(e, "writev", M_WRITEV, 1 << 20);
}

TEST(send_sendmmsg)
{
	send_case(e, "sendmmsg", M_SENDMMSG, 1 << 20);
}

TEST(send_sendfile)
{
	send_case(e, "sendfile", M_SENDFILE, (1 << 20) + 4321);
}

TEST(send_splice_from_pipe)
{
	send_case(e, "splice pipe->socket", M_SPLICE, (1 << 20) + 777);
}

/* --- MSG_MORE and TCP_CORK --------------------------------------------- */

struct cork_arg {
	int cork; /* 0: MSG_MORE, 1: TCP_CORK */
};

static int readable_now(int fd)
{
	return poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 0) > 0;
}

static int cork_scenario(struct result *r, void *arg)
{
	const struct cork_arg *a = arg;
	unsigned char buf[4000];
	struct pair_opt po = {0};
	int c, s, on = 1, off = 0, inq = -1;
	ssize_t n;

	if (scen_pair(r, &c, &s, &po))
		return 1;
	if (a->cork)
		setsockopt(c, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
	pat_fill(buf, sizeof(buf), 0, 5);
	for (int i = 0; i < 3; i++) {
		n = send(c, buf + 1000 * i, 1000, a->cork ? 0 : MSG_MORE);
		res_same(r,
			 i ? (i == 1 ? "send2_ret" : "send3_ret") : "send1_ret",
			 n);
	}
	sleep_ms(50);
	/*
	 * The stack holds the corked bytes back (a hint: TCP promises no
	 * such thing, and an application cannot rely on it). Recorded.
	 */
	ioctl(s, FIONREAD, &inq);
	res_gap(r, "corked_bytes_readable", readable_now(s) ? 1 : 0,
		"MSG_MORE/TCP_CORK: bytes not held back");
	res_gap(r, "corked_fionread", inq,
		"MSG_MORE/TCP_CORK: bytes not held back");
	if (a->cork) {
		n = send(c, buf + 3000, 1000, 0);
		setsockopt(c, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
	} else {
		n = send(c, buf + 3000, 1000, 0);
	}
	res_same(r, "final_send_ret", n);
	memset(buf, 0, sizeof(buf));
	n = recv_exact(r, s, buf, sizeof(buf));
	res_same(r, "rx_bytes", n);
	res_same(r, "rx_first_bad_byte", pat_check(buf, sizeof(buf), 0, 5));
	close(c);
	close(s);
	return 0;
}

TEST(send_msg_more)
{
	struct cork_arg a = {.cork = 0};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "MSG_MORE", cork_scenario, &a, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 4000, "every byte redirected");
}

TEST(send_tcp_cork)
{
	struct cork_arg a = {.cork = 1};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "TCP_CORK", cork_scenario, &a, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 4000, "every byte redirected");
}

/* --- MSG_DONTWAIT against a receiver that does not read ----------------- */

#define DONTWAIT_CAP   (64u << 20) /* stop filling here if no EAGAIN */
#define DONTWAIT_CHUNK (64 * 1024)

static int dontwait_scenario(struct result *r, void *arg)
{
	static unsigned char buf[DONTWAIT_CHUNK];
	struct pair_opt po = {0};
	struct reader rd = {.seed = 3, .r = r};
	size_t sent = 0;
	ssize_t n = 0;
	int c, s, err = 0, writable;

	(void)arg;
	if (scen_pair(r, &c, &s, &po))
		return 1;
	/* fill: the receiver does not read */
	while (sent < DONTWAIT_CAP) {
		pat_fill(buf, sizeof(buf), sent, 3);
		n = send(c, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			err = errno;
			break;
		}
		sent += n; /* a short write: the next one returns EAGAIN */
	}
	/*
	 * Flow control: TCP stops a sender when the receiver's buffers are
	 * full. An application relies on it to bound its memory (a proxy
	 * stops reading upstream while downstream is full).
	 */
	res_same(r, "fill_ended_with_errno", err);
	res_info(r, "bytes_accepted_before_EAGAIN", sent);
	/* the receiver reads what is queued; the sender can go on */
	rd.fd = s;
	reader_start(&rd);
	writable = poll(&(struct pollfd){.fd = c, .events = POLLOUT}, 1,
			1000) == 1;
	res_same(r, "writable_within_1s_after_reads", writable);
	pat_fill(buf, sizeof(buf), sent, 3);
	n = send(c, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
	res_same(r, "dontwait_send_progresses", n > 0);
	if (n > 0)
		sent += n;
	res_info(r, "last_send_returned", n);
	res_info(r, "bytes_sent_total", sent);
	shutdown(c, SHUT_WR);
	reader_join(&rd);
	res_same(r, "rx_bytes_equals_sent", rd.got == sent);
	res_same(r, "rx_first_bad_byte", rd.bad_at);
	res_same(r, "rx_errno", rd.err);
	close(c);
	close(s);
	return 0;
}

TEST(send_dontwait_full_receiver)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "MSG_DONTWAIT, full receiver", dontwait_scenario, NULL,
		     &d, &(struct diff_opts){.timeout_s = 60}))
		return;
	/* a limit on the receiver's queue may move the rest to the stack */
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected");
	diff_check_bytes(e, &d, res_get(&d.accel, "bytes_sent_total"));
}
