// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Known and suspected kernel gaps of sockmap redirection, measured in both
 * modes with timeouts so that nothing can hang: a splice() reader, kTLS set
 * up after establishment, MSG_ZEROCOPY completions, SO_PEEK_OFF. Each test
 * asserts what the application needs (it works, the bytes are exact); a
 * failure here is a gap sockmesh must exclude or detect (docs/compat.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/* --- splice() from the socket into a pipe ------------------------------- */

#define SPLICE_TOTAL (256 * 1024)

struct splice_arg {
	int shut; /* the sender half-closes after its bytes */
	int blocking;
};

static int splice_reader(struct result *r, void *arg)
{
	const struct splice_arg *a = arg;
	static unsigned char buf[SPLICE_TOTAL];
	struct timeval tv = {.tv_sec = 2};
	size_t got = 0, rest = 0;
	long spins = 0;
	int c, s, p[2], eof = 0, err = 0;
	double t0;

	if (scen_pair(r, &c, &s, NULL) || pipe2(p, O_CLOEXEC))
		return 1;
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	send_pat(c, SPLICE_TOTAL, 0, 81); /* 64 KiB writes: redirected */
	if (a->shut)
		shutdown(c, SHUT_WR);
	/* bounded: SO_RCVTIMEO for the blocking splice, a deadline else */
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!a->blocking)
		set_nonblock(s, 1); /* an event loop's socket */
	t0 = now_s();
	while (got < SPLICE_TOTAL && now_s() - t0 < 2.0) {
		ssize_t n;

		if (!a->blocking &&
		    poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1, 100) !=
			    1)
			continue;
		n = splice(s, NULL, p[1], NULL, SPLICE_TOTAL - got,
			   a->blocking ? 0 : SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN && !a->blocking) {
			spins++; /* readable, yet nothing to splice */
			continue;
		}
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			eof = n == 0;
			break;
		}
		if (read(p[0], buf + got, n) != n) {
			res_broken(r, "read pipe: %s", strerror(errno));
			return 1;
		}
		got += n;
	}
	res_gap(r, "spliced_bytes", got,
		"splice() cannot see redirected bytes");
	res_same(r, "spliced_bad_at", pat_check(buf, got, 0, 81));
	res_same(r, "splice_ended_errno", err);
	res_gap(r, "splice_saw_eof_before_the_bytes", eof && got < SPLICE_TOTAL,
		"splice() cannot see redirected bytes");
	res_info(r, "poll_readable_but_splice_EAGAIN", spins);
	res_info(r, "ms_spent", (long long)((now_s() - t0) * 1000));
	/* are the bytes still there for recv()? */
	set_nonblock(s, 1);
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		rest += n;
	}
	res_info(r, "bytes_left_for_recv", rest);
	close(p[0]);
	close(p[1]);
	close(c);
	close(s);
	return 0;
}

static void splice_case(struct env *e, const char *what, struct splice_arg *a)
{
	struct diff d;

	memset(&d, 0, sizeof(d));
	if (conf_start(e, ""))
		return;
	/* the application needs every byte through splice(): compared */
	diff_run(e, what, splice_reader, a, &d, NULL);
	ASSERT_EQ(d.da.bytes_redirected, SPLICE_TOTAL, "redirected");
}

TEST(gap_splice_reader_nonblocking)
{
	struct splice_arg a = {.shut = 0, .blocking = 0};

	splice_case(e, "splice() reader, poll + SPLICE_F_NONBLOCK", &a);
}

TEST(gap_splice_reader_blocking_then_eof)
{
	struct splice_arg a = {.shut = 1, .blocking = 1};

	splice_case(e, "splice() reader, blocking, peer half-closed", &a);
}

/* --- kTLS set up after establishment ------------------------------------ */

/*
 * Kernels with "tls: reject the combination of TLS and sockmap" (Debian's
 * 6.1.189 and 6.12.111 brought it from stable; 7.x has it) refuse TLS_TX
 * and TLS_RX on a socket that has a psock; the TCP_ULP before it succeeds.
 * sockmesh cannot take the socket out of the map at that setsockopt(): the
 * verifier allows sockhash deletes from sock_ops and packet programs only
 * (98e948fb60d4), and a cgroup/setsockopt program is neither. Before that
 * kernel change the keys are accepted, and the connection must take the
 * stack (ulp_fallbacks), or the reader would get the plaintext that the
 * SK_MSG program sees before encryption.
 */
#define KNOWN_KTLS                                                    \
	"known: kTLS keys refused (EINVAL) on a socket in a sockmap " \
	"(docs/compat.md, kTLS)"

static void tls_info(struct tls12_crypto_info_aes_gcm_128 *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_2_VERSION;
	ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	/* fixed key material: the same ciphertext in both runs */
	for (int i = 0; i < TLS_CIPHER_AES_GCM_128_KEY_SIZE; i++)
		ci->key[i] = (unsigned char)(i * 7 + 1);
	for (int i = 0; i < TLS_CIPHER_AES_GCM_128_IV_SIZE; i++)
		ci->iv[i] = (unsigned char)(i * 3 + 2);
	for (int i = 0; i < TLS_CIPHER_AES_GCM_128_SALT_SIZE; i++)
		ci->salt[i] = (unsigned char)(i + 5);
}

#define TLS_RECORDS 3
static const size_t tls_len[TLS_RECORDS] = {1000, 5000, 16000};
#define TLS_OVERHEAD 29 /* header 5 + explicit nonce 8 + tag 16 */

struct ktls_arg {
	int rx; /* the receiver uses kTLS too (else it reads the records) */
};

static int ktls(struct result *r, void *arg)
{
	const struct ktls_arg *a = arg;
	struct tls12_crypto_info_aes_gcm_128 ci;
	static unsigned char buf[65536];
	size_t plain = 0, wire = 0;
	ssize_t n;
	int c, s, ret;

	if (scen_pair(r, &c, &s, NULL))
		return 1;
	ret = setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
	res_same(r, "tcp_ulp_tls_errno", ret ? errno : 0);
	if (ret)
		goto out; /* the test says why */
	tls_info(&ci);
	ret = setsockopt(c, SOL_TLS, TLS_TX, &ci, sizeof(ci));
	res_gap(r, "tls_tx_errno", ret ? errno : 0, KNOWN_KTLS);
	if (a->rx) {
		ret = setsockopt(s, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
		res_same(r, "rx_tcp_ulp_tls_errno", ret ? errno : 0);
		ret = ret ?: setsockopt(s, SOL_TLS, TLS_RX, &ci, sizeof(ci));
		res_gap(r, "tls_rx_errno", ret ? errno : 0, KNOWN_KTLS);
	}
	for (int i = 0; i < TLS_RECORDS; i++) {
		res_same(r, i ? "send_ret_later" : "send_ret_first",
			 send_pat(c, tls_len[i], plain, 91));
		plain += tls_len[i];
		wire += tls_len[i] + TLS_OVERHEAD;
	}
	shutdown(c, SHUT_WR);
	if (a->rx) {
		/* the application reads its plaintext back */
		n = recv_exact(r, s, buf, plain);
		res_same(r, "rx_plaintext_bytes", n);
		res_same(r, "rx_plaintext_bad_at",
			 n > 0 ? pat_check(buf, n, 0, 91) : -2);
	} else {
		/* a user-space TLS peer reads records: the same ciphertext
		 * (or, keys refused, the plaintext the sender then sent) */
		n = recv_exact(r, s, buf, sizeof(buf));
		res_gap(r, "rx_wire_bytes", n, KNOWN_KTLS);
		res_gap(r, "rx_wire_expected", n == (ssize_t)wire, KNOWN_KTLS);
		res_gap(r, "rx_first_byte_is_tls_appdata",
			n > 0 && buf[0] == 0x17, KNOWN_KTLS);
		res_gap(r, "rx_wire_hash_low32",
			n > 0 ? fnv(FNV_INIT, buf, n) & 0xffffffff : 0,
			KNOWN_KTLS);
		res_info(r, "rx_wire_as_plaintext_bad_at",
			 n == (ssize_t)plain ? pat_check(buf, n, 0, 91) : -2);
	}
out:
	close(c);
	close(s);
	return 0;
}

static void ktls_case(struct env *e, const char *what, struct ktls_arg *a)
{
	struct diff d;
	long long ulp;

	if (conf_start(e, "") || diff_run(e, what, ktls, a, &d, NULL))
		return;
	ulp = res_get(&d.plain, "tcp_ulp_tls_errno");
	if (ulp == ENOENT) {
		/* the same refusal in both runs was checked above */
		env_skip(
			e,
			"this kernel has no kTLS: setsockopt(TCP_ULP, \"tls\") is ENOENT on plain TCP too (CONFIG_TLS unset, no tls module to load)");
		return;
	}
	ASSERT_EQ(ulp, 0, "kTLS on plain TCP");
	ASSERT_EQ(res_get(&d.plain, "tls_tx_errno"), 0, "TLS_TX on plain TCP");
	/* accelerated: kTLS works (kernels before the rejection) or its
	 * keys are refused with EINVAL, and the bytes are still exact */
	ASSERT_TRUE(res_get(&d.accel, "tls_tx_errno") == 0 ||
			    res_get(&d.accel, "tls_tx_errno") == EINVAL,
		    "TLS_TX accepted, or refused as docs/compat.md says");
	if (!a->rx && !res_get(&d.accel, "tls_tx_errno")) {
		/* keys accepted (kernels before the rejection): the records,
		 * as on TCP, never the plaintext the program saw */
		ASSERT_EQ(res_get(&d.accel, "rx_wire_hash_low32"),
			  res_get(&d.plain, "rx_wire_hash_low32"),
			  "kTLS accepted: the reader gets the same records");
	}
	/* either way the connection left the redirect before any record */
	ASSERT_GE(d.da.ulp_fallbacks, 1, "ulp_fallbacks counts the switch");
	if (!a->rx && res_get(&d.accel, "tls_tx_errno") == EINVAL) {
		/* the sender's records went out as plaintext: exact */
		ASSERT_EQ(res_get(&d.accel, "rx_wire_bytes"),
			  1000 + 5000 + 16000, "the plaintext arrived");
		ASSERT_EQ(res_get(&d.accel, "rx_wire_as_plaintext_bad_at"), -1,
			  "the plaintext is exact");
	}
	ASSERT_EQ(d.da.sockets_added, 2, "both ends accelerated");
}

TEST(gap_ktls_tx_user_space_reader)
{
	struct ktls_arg a = {.rx = 0};

	ktls_case(e, "kTLS TX after establishment, raw reader", &a);
}

TEST(gap_ktls_both_ends)
{
	struct ktls_arg a = {.rx = 1};

	ktls_case(e, "kTLS TX and RX after establishment", &a);
}

/* --- MSG_ZEROCOPY: the completions the sender waits for ---------------- */

#define ZC_SENDS 4

/*
 * @arg: 1 when SO_ZEROCOPY is set before connect() (as the kernel's
 * msg_zerocopy selftest does): sockmesh sees it at establishment and leaves
 * the socket alone, so completions arrive. Set on an established socket,
 * the socket is already redirected and no completion ever comes.
 */
static int zerocopy(struct result *r, void *arg)
{
	static unsigned char buf[ZC_SENDS * 65536];
	const int before = *(const int *)arg;
	const struct pair_opt o = {.zerocopy = before};
	unsigned char ctl[256];
	int c, s, one = 1, lo = -1, hi = -1, copied = -1;
	double t0;

	if (scen_pair(r, &c, &s, &o))
		return 1;
	res_same(r, "so_zerocopy_errno",
		 before ? 0
			: (setsockopt(c, SOL_SOCKET, SO_ZEROCOPY, &one,
				      sizeof(one))
				   ? errno
				   : 0));
	pat_fill(buf, sizeof(buf), 0, 92);
	for (int i = 0; i < ZC_SENDS; i++) {
		ssize_t n = send(c, buf + i * 65536, 65536, MSG_ZEROCOPY);

		res_same(r, i ? "send_zc_later" : "send_zc_first", n);
	}
	res_same(r, "rx_bytes", recv_exact(r, s, buf, sizeof(buf)));
	res_same(r, "rx_bad_at", pat_check(buf, sizeof(buf), 0, 92));
	/* the completions: ids 0..ZC_SENDS-1, within 1 s */
	t0 = now_s();
	while (hi < ZC_SENDS - 1 && now_s() - t0 < 1.0) {
		struct msghdr mh = {.msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};
		struct cmsghdr *cm;

		if (recvmsg(c, &mh, MSG_ERRQUEUE) < 0) {
			poll(&(struct pollfd){.fd = c}, 1, 50);
			continue;
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			struct sock_extended_err *ee =
				(struct sock_extended_err *)CMSG_DATA(cm);

			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			if (lo < 0 || (int)ee->ee_info < lo)
				lo = ee->ee_info;
			if ((int)ee->ee_data > hi)
				hi = ee->ee_data;
			copied = !!(ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED);
		}
	}
	if (before)
		res_same(r, "completions_cover_all_sends",
			 lo == 0 && hi == ZC_SENDS - 1);
	else
		res_gap(r, "completions_cover_all_sends",
			lo == 0 && hi == ZC_SENDS - 1,
			"SO_ZEROCOPY after connect: no completions; set it before");
	res_info(r, "completion_lo", lo);
	res_info(r, "completion_hi", hi);
	res_info(r, "completion_copied_flag", copied);
	close(c);
	close(s);
	return 0;
}

TEST(gap_msg_zerocopy_completions)
{
	static const int before;
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "MSG_ZEROCOPY, SO_ZEROCOPY after connect", zerocopy,
		     (void *)&before, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, ZC_SENDS * 65536,
		  "every byte redirected");
}

TEST(send_msg_zerocopy_set_before_connect)
{
	static const int before = 1;
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "MSG_ZEROCOPY, SO_ZEROCOPY before connect", zerocopy,
		     (void *)&before, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 0,
		  "the zerocopy sender is left alone");
	ASSERT_GE(d.da.sockets_skipped, 1, "and counted as skipped");
}

/* --- SO_PEEK_OFF: peeking moves a peek offset ---------------------------- */

static int peek_off(struct result *r, void *arg)
{
	unsigned char a[100], b[100];
	int c, s, off = 0, ret;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	ret = setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	res_same(r, "so_peek_off_errno", ret ? errno : 0);
	send_pat(c, 1000, 0, 93);
	sleep_ms(20);
	res_same(r, "peek1", recv(s, a, 100, MSG_PEEK));
	res_same(r, "peek2", recv(s, b, 100, MSG_PEEK));
	/* with SO_PEEK_OFF the second peek continues where the first ended */
	res_gap(r, "peek2_is_bytes_100_199",
		ret == 0 && pat_check(b, 100, 100, 93) < 0,
		"tcp_bpf: SO_PEEK_OFF ignored");
	res_same(r, "read", recv(s, a, 100, 0));
	res_same(r, "read_is_bytes_0_99", pat_check(a, 100, 0, 93) < 0);
	close(c);
	close(s);
	return 0;
}

TEST(gap_so_peek_off)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "SO_PEEK_OFF", peek_off, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 1000, "redirected");
}
