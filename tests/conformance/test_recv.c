// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Receive side: read sizes from 1 byte up, MSG_WAITALL, MSG_PEEK, readv,
 * recvmmsg, FIONREAD, MSG_TRUNC, urgent data, TCP_INFO: the same values
 * accelerated as on plain TCP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with the byte counters */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conform.h"

/* Wait until @fd is readable and then a little more, so that everything
 * the peer sent has landed. */
static void settle(int fd)
{
	poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 1000);
	sleep_ms(20);
}

static void start(struct env *e, const char *what, scenario_fn fn, void *arg,
		  size_t redirected)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, what, fn, arg, &d, NULL))
		return;
	ASSERT_EQ(d.da.sockets_added, 2, "both ends accelerated");
	ASSERT_EQ(d.da.bytes_redirected, redirected, "every byte redirected");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

/* --- read sizes -------------------------------------------------------- */

#define SIZES_K	    300
#define SIZES_TOTAL (SIZES_K * (SIZES_K + 1) / 2 + 10000)

static int read_sizes(struct result *r, void *arg)
{
	static unsigned char buf[SIZES_TOTAL];
	size_t off = 0;
	int c, s, full = 0, first_short = 0, bad_ret = 0;
	ssize_t n;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	/* three messages of ~18 KiB: the reads cross message boundaries */
	for (int i = 0; i < 3; i++) {
		size_t part = SIZES_TOTAL / 3 + (i == 2 ? SIZES_TOTAL % 3 : 0);

		if (send_pat(c, part, off, 1)) {
			res_broken(r, "send: %s", strerror(errno));
			return 1;
		}
		off += part;
	}
	settle(s);
	off = 0;
	for (int k = 1; k <= SIZES_K; k++) {
		n = read(s, buf + off, k);
		if (n <= 0 || n > k) {
			bad_ret = k;
			break;
		}
		/* TCP may return less than asked (both are valid TCP) */
		if (n < k && !first_short)
			first_short = k;
		full += n == k;
		off += n;
	}
	res_same(r, "first_read_outside_1_to_k", bad_ret);
	res_info(r, "reads_of_k_bytes_returning_k", full);
	res_info(r, "first_short_read_k", first_short);
	n = read(s, buf + off, sizeof(buf) - off); /* the rest, in one read */
	res_info(r, "last_read_returned", n);
	if (n > 0)
		off += n;
	res_same(r, "rx_bytes", off);
	res_same(r, "rx_first_bad_byte", pat_check(buf, off, 0, 1));
	close(c);
	close(s);
	return 0;
}

TEST(recv_read_sizes_1_up)
{
	start(e, "read sizes 1..300", read_sizes, NULL, SIZES_TOTAL);
}

/* --- MSG_WAITALL ------------------------------------------------------- */

struct later {
	int fd;
	int parts, part_len, gap_ms, shut_after;
};

static void *send_later(void *p)
{
	struct later *l = p;

	for (int i = 0; i < l->parts; i++) {
		sleep_ms(l->gap_ms);
		send_pat(l->fd, l->part_len, (uint64_t)i * l->part_len, 2);
	}
	if (l->shut_after)
		shutdown(l->fd, SHUT_WR);
	return NULL;
}

static int waitall(struct result *r, void *arg)
{
	unsigned char buf[4000];
	struct later l = {.parts = 3, .part_len = 1000, .gap_ms = 30};
	pthread_t t;
	ssize_t n;
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	/* 1: the bytes come in three sends, 30 ms apart */
	l.fd = c;
	pthread_create(&t, NULL, send_later, &l);
	n = recv(s, buf, 3000, MSG_WAITALL);
	res_gap(r, "waitall_3000_spread_returned", n,
		"tcp_bpf: MSG_WAITALL returns what is queued");
	pthread_join(t, NULL);
	if (n > 0 && n < 3000)
		n += recv_exact(r, s, buf + n, 3000 - n);
	res_same(r, "rx_first_bad_byte", pat_check(buf, 3000, 0, 2));
	/* 2: all there already, in three messages */
	l.gap_ms = 0;
	pthread_create(&t, NULL, send_later, &l);
	pthread_join(t, NULL);
	settle(s);
	n = recv(s, buf, 3000, MSG_WAITALL);
	res_same(r, "waitall_3000_queued_returned", n);
	/* 3: the peer half-closes after 1500 bytes */
	l = (struct later){
		.fd = c, .parts = 1, .part_len = 1500, .shut_after = 1};
	pthread_create(&t, NULL, send_later, &l);
	n = recv(s, buf, 3000, MSG_WAITALL);
	pthread_join(t, NULL);
	res_same(r, "waitall_3000_eof_after_1500_returned", n);
	close(c);
	close(s);
	return 0;
}

TEST(recv_msg_waitall)
{
	start(e, "MSG_WAITALL", waitall, NULL, 7500);
}

/* --- MSG_PEEK ---------------------------------------------------------- */

static int peek(struct result *r, void *arg)
{
	unsigned char a[10000], b[10000];
	ssize_t n;
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 3000, 0, 4); /* two messages */
	send_pat(c, 7000, 3000, 4);
	settle(s);
	n = recv(s, a, 4000, MSG_PEEK);
	res_same(r, "peek_4000_returned", n);
	n = recv(s, a, 4000, MSG_PEEK);
	res_same(r, "peek_again_returned", n);
	n = recv(s, b, 4000, 0);
	res_same(r, "read_4000_returned", n);
	res_same(r, "peek_equals_read", n > 0 && !memcmp(a, b, n));
	res_same(r, "read_first_bad_byte", pat_check(b, 4000, 0, 4));
	n = recv(s, a, sizeof(a), MSG_PEEK);
	res_same(r, "peek_rest_returned", n);
	res_same(r, "peek_rest_first_bad_byte", pat_check(a, 6000, 4000, 4));
	n = recv(s, b, sizeof(b), MSG_DONTWAIT);
	res_same(r, "read_rest_returned", n);
	res_same(r, "peek_rest_equals_read", n > 0 && !memcmp(a, b, n));
	close(c);
	close(s);
	return 0;
}

TEST(recv_msg_peek)
{
	start(e, "MSG_PEEK", peek, NULL, 10000);
}

/* --- readv and recvmmsg ------------------------------------------------ */

static int readv_recvmmsg(struct result *r, void *arg)
{
	static unsigned char buf[8][2000];
	unsigned char v1[100], v2[1000], v3[5000];
	struct iovec iov[3] = {
		{v1, sizeof(v1)}, {v2, sizeof(v2)}, {v3, sizeof(v3)}};
	struct mmsghdr mm[4];
	struct iovec miov[4];
	ssize_t n;
	int c, s, bad = 0, k;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 6100, 0, 6);
	settle(s);
	n = readv(s, iov, 3);
	res_same(r, "readv_returned", n);
	bad |= pat_check(v1, 100, 0, 6) >= 0;
	bad |= pat_check(v2, 1000, 100, 6) >= 0;
	bad |= pat_check(v3, 5000, 1100, 6) >= 0;
	res_same(r, "readv_bytes_wrong", bad);

	send_pat(c, 5000, 0, 7);
	settle(s);
	memset(mm, 0, sizeof(mm));
	for (k = 0; k < 4; k++) {
		miov[k] = (struct iovec){buf[k], 2000};
		mm[k].msg_hdr.msg_iov = &miov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
	}
	n = recvmmsg(s, mm, 4, MSG_WAITFORONE, NULL);
	res_same(r, "recvmmsg_returned", n);
	for (k = 0; k < n && k < 4; k++) {
		char name[32];

		snprintf(name, sizeof(name), "recvmmsg_len_%d", k);
		res_same(r, name, mm[k].msg_len);
	}
	res_same(r, "recvmmsg_bytes_wrong",
		 n >= 3 && (pat_check(buf[0], 2000, 0, 7) >= 0 ||
			    pat_check(buf[1], 2000, 2000, 7) >= 0 ||
			    pat_check(buf[2], 1000, 4000, 7) >= 0));
	close(c);
	close(s);
	return 0;
}

TEST(recv_readv_recvmmsg)
{
	start(e, "readv, recvmmsg", readv_recvmmsg, NULL, 11100);
}

/* --- FIONREAD ---------------------------------------------------------- */

static int fionread(struct result *r, void *arg)
{
	unsigned char buf[10000];
	int c, s, inq = -1;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	ioctl(s, FIONREAD, &inq);
	res_same(r, "fionread_empty", inq);
	send_pat(c, 4000, 0, 8);
	send_pat(c, 6000, 4000, 8);
	settle(s);
	inq = -1;
	ioctl(s, FIONREAD, &inq);
	res_same(r, "fionread_10000_queued", inq);
	res_same(r, "read_1234", recv(s, buf, 1234, 0));
	inq = -1;
	ioctl(s, FIONREAD, &inq);
	res_same(r, "fionread_after_1234", inq);
	res_same(r, "read_4000", recv(s, buf, 4000, 0));
	inq = -1;
	ioctl(s, FIONREAD, &inq);
	res_same(r, "fionread_after_5234", inq);
	res_same(r, "read_rest", recv(s, buf, sizeof(buf), 0));
	inq = -1;
	ioctl(s, FIONREAD, &inq);
	res_same(r, "fionread_after_all", inq);
	close(c);
	close(s);
	return 0;
}

TEST(recv_fionread)
{
	struct diff d;

	if (conf_start(e, ""))
		return;
	/* before 6.8, FIONREAD of a socket in a sockmap is tcp_ioctl's: it
	 * counts the TCP queue only (docs/compat.md, "Kernels") */
	if (!(env_feat(e) & SM_FEAT_SIOCINQ)) {
		env_skip(e, "this kernel lacks tcp_bpf_ioctl() (6.8): FIONREAD "
			    "of a socket in a sockmap misses redirected bytes");
		return;
	}
	if (diff_run(e, "FIONREAD", fionread, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.sockets_added, 2, "both ends accelerated");
	ASSERT_EQ(d.da.bytes_redirected, 10000, "every byte redirected");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

/* --- MSG_TRUNC: TCP discards the bytes instead of copying them --------- */

static int msg_trunc(struct result *r, void *arg)
{
	unsigned char buf[5000];
	ssize_t n;
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 5000, 0, 9);
	settle(s);
	errno = 0;
	n = recv(s, NULL, 1000, MSG_TRUNC);
	res_gap(r, "trunc_1000_returned", n,
		"tcp_bpf: MSG_TRUNC unsupported (EFAULT)");
	res_gap(r, "trunc_errno", n < 0 ? errno : 0,
		"tcp_bpf: MSG_TRUNC unsupported (EFAULT)");
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	res_gap(r, "next_read_returned", n,
		"tcp_bpf: MSG_TRUNC unsupported (EFAULT)");
	/* after a discard of 1000, the next byte is byte 1000 */
	res_gap(r, "next_read_starts_at_1000",
		n > 0 && pat_check(buf, n, 1000, 9) < 0,
		"tcp_bpf: MSG_TRUNC unsupported (EFAULT)");
	close(c);
	close(s);
	return 0;
}

TEST(recv_msg_trunc)
{
	start(e, "MSG_TRUNC", msg_trunc, NULL, 5000);
}

/* --- zero-length reads and writes -------------------------------------- */

static int zero_len(struct result *r, void *arg)
{
	unsigned char buf[16];
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	res_same(r, "send_0_returned", send(c, buf, 0, 0));
	res_gap(r, "recv_0_returned_nothing_queued",
		recv(s, buf, 0, MSG_DONTWAIT),
		"tcp_bpf: 0-byte recv gives 0, not EAGAIN");
	send_pat(c, 10, 0, 10);
	settle(s);
	res_same(r, "recv_0_returned_data_queued", recv(s, buf, 0, 0));
	res_same(r, "recv_10_returned", recv(s, buf, 10, 0));
	close(c);
	close(s);
	return 0;
}

TEST(recv_zero_length)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "zero-length send/recv", zero_len, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 10, "the 10 bytes redirected");
}

/* --- urgent data (MSG_OOB) --------------------------------------------- */

static int oob(struct result *r, void *arg)
{
	unsigned char buf[100];
	char u = 0;
	ssize_t n;
	int c, s, mark = -1;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 50, 0, 11);
	n = send(c, "!", 1, MSG_OOB);
	res_same(r, "send_oob_returned", n);
	settle(s);
	n = recv(s, &u, 1, MSG_OOB | MSG_DONTWAIT);
	res_same(r, "recv_oob_returned", n);
	res_gap(r, "recv_oob_byte", n == 1 ? u : -1,
		"tcp_bpf: MSG_OOB reads a stream byte");
	ioctl(s, SIOCATMARK, &mark);
	res_info(r, "atmark", mark);
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	res_same(r, "inline_bytes", n);
	/* the urgent byte is not part of the stream (SO_OOBINLINE is off) */
	res_gap(r, "inline_stream_exact",
		n == 50 && pat_check(buf, 50, 0, 11) < 0,
		"tcp_bpf: urgent data arrives inline");
	close(c);
	close(s);
	return 0;
}

TEST(recv_urgent_data)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "MSG_OOB", oob, NULL, &d, NULL))
		return;
	ASSERT_GT(d.da.msgs_redirected, 0, "redirected");
}

/* --- TCP_INFO byte counters (monitoring) -------------------------------- */

static int tcp_info_counts(struct result *r, void *arg)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	unsigned char buf[65536];
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 65536, 0, 12);
	recv_exact(r, s, buf, sizeof(buf));
	memset(&ti, 0, sizeof(ti));
	getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
	res_gap(r, "receiver_tcpi_bytes_received", ti.tcpi_bytes_received,
		"TCP_INFO/ss byte counters do not count redirected bytes");
	len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &len);
	res_gap(r, "sender_tcpi_bytes_acked", ti.tcpi_bytes_acked,
		"TCP_INFO/ss byte counters do not count redirected bytes");
	res_same(r, "sender_state", ti.tcpi_state);
	close(c);
	close(s);
	return 0;
}

TEST(recv_tcp_info_counters)
{
	start(e, "TCP_INFO", tcp_info_counts, NULL, 65536);
}
