// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bulk small writes move to the stack (SM_BULK_RUN small messages one way
 * with nothing coming back); request/response and large writes stay
 * redirected. The switch must keep every byte in order: the receiver
 * sleeps first, so redirected bytes are still unread when stack bytes
 * arrive behind them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

struct oneway {
	size_t write_size;
	size_t total;
	int rr; /* request/response instead of a stream */
	int reader_delay_ms;
	size_t sync_after; /* > 0: after so many writes the writer waits until
			    * the reader has read all of them */
};

static int connect_pair(int *cfd, int *afd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sin, &len))
		return -1;
	*cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&sin, sizeof(sin)))
		return -1;
	*afd = accept(lfd, NULL, NULL);
	close(lfd);
	return *afd < 0 ? -1 : 0;
}

static unsigned char pat(size_t off)
{
	return (unsigned char)((off * 2654435761u) >> 24);
}

/* recv() exactly @len bytes, retrying the EAGAIN of docs/datapath.md. */
static int recv_exact(int fd, unsigned char *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1,
			     1000);
			continue;
		}
		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

static int oneway_child(void *arg)
{
	struct oneway *o = arg;
	static unsigned char buf[1 << 20];
	int cfd, afd, sync[2];
	pid_t pid;
	char c;

	if (connect_pair(&cfd, &afd))
		return 10;
	if (o->rr) {
		/* request, response, o->total / o->write_size times */
		for (size_t off = 0; off < o->total; off += o->write_size) {
			for (size_t i = 0; i < o->write_size; i++)
				buf[i] = pat(off + i);
			if (send(cfd, buf, o->write_size, 0) !=
				    (ssize_t)o->write_size ||
			    recv_exact(afd, buf, o->write_size) ||
			    send(afd, buf, o->write_size, 0) !=
				    (ssize_t)o->write_size ||
			    recv_exact(cfd, buf, o->write_size))
				return 11;
			for (size_t i = 0; i < o->write_size; i++)
				if (buf[i] != pat(off + i))
					return 12;
		}
		return 0;
	}
	if (pipe(sync))
		return 10;
	pid = fork();
	if (!pid) { /* the writer */
		close(afd);
		for (size_t off = 0; off < o->total; off += o->write_size) {
			if (o->sync_after &&
			    off == o->sync_after * o->write_size &&
			    read(sync[0], &c, 1) != 1)
				_exit(17);
			for (size_t i = 0; i < o->write_size; i++)
				buf[i] = pat(off + i);
			for (size_t sent = 0; sent < o->write_size;) {
				ssize_t n = send(cfd, buf + sent,
						 o->write_size - sent, 0);

				if (n <= 0)
					_exit(13);
				sent += n;
			}
		}
		_exit(0);
	}
	close(cfd);
	usleep(o->reader_delay_ms * 1000);
	for (size_t off = 0; off < o->total;) {
		size_t want = o->total - off < sizeof(buf) ? o->total - off
							   : sizeof(buf);

		if (o->sync_after && off < o->sync_after * o->write_size &&
		    want > o->sync_after * o->write_size - off)
			want = o->sync_after * o->write_size - off;

		if (recv_exact(afd, buf, want))
			return 14;
		for (size_t i = 0; i < want; i++) {
			if (buf[i] != pat(off + i)) {
				fprintf(stderr, "    byte %zu out of order\n",
					off + i);
				return 15;
			}
		}
		off += want;
		if (o->sync_after && off == o->sync_after * o->write_size &&
		    write(sync[1], "g", 1) != 1)
			return 18;
	}
	return env_wait(pid, 60) ? 16 : 0;
}

static int start(struct env *e)
{
	return ASSERT_EQ(env_write_config(e, "", ""), 0, "write config") &&
			       ASSERT_EQ(env_start_daemon(e), 0,
					 "start sockmeshd")
		       ? 0
		       : -1;
}

static int run(struct env *e, struct oneway *o)
{
	return env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, oneway_child, o),
			120);
}

/*
 * A small-write stream moves to the stack at its first message after the
 * run that finds the receiver's redirected queue empty (the writer waits
 * once until the reader has read all it sent): no stack byte ever waits
 * behind a redirected one, and both ends leave the map.
 */
TEST(small_write_stream_moves_to_stack_in_order)
{
	/*
	 * The reader sleeps through the first 200 writes, so the receiver's
	 * queue is never empty before the writer waits (a reader that kept
	 * up could empty it earlier: 149 redirected once, under ASan).
	 */
	struct oneway o = {.write_size = 1024,
			   .total = 8 << 20,
			   .sync_after = 200,
			   .reader_delay_ms = 50};
	struct sm_counters c;

	if (start(e))
		return;
	ASSERT_EQ(run(e, &o), 0, "8 MiB in 1 KiB writes, exact and in order");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.bulk_fallbacks, 1, "the stream moved to the stack");
	ASSERT_EQ(c.rcvbuf_fallbacks, 0, "before the receiver fell behind");
	/* 200 when the run was complete by then; a slow machine (ASan) may
	 * space the first writes more than SM_BULK_GAP_NS apart. The window
	 * variant (before 6.2) switches at the end of the run. */
	if (env_feat(e) & SM_FEAT_KERN_CTX)
		ASSERT_GE(c.msgs_redirected, 200,
			  "redirected until the receiver had read everything");
	else
		ASSERT_GE(c.msgs_redirected, SM_BULK_RUN - 1,
			  "redirected until the run was complete");
	ASSERT_EQ(c.peer_misses, 0, "no miss");
	/* both ends left the map: the rest never ran the SK_MSG program */
	ASSERT_EQ(c.sockets_left, 2, "both ends are plain TCP again");
	ASSERT_GT(o.total, c.bytes_redirected + c.bytes_passed,
		  "bytes after leaving are not seen by sockmesh");
}

/*
 * The same stream to a reader that sleeps first: its queue never empties,
 * so the stream stays redirected until the receiver is SM_RCVBUF_FLOOR
 * behind; then the stack takes over behind the unread redirected bytes,
 * which the reader must still read first.
 */
TEST(small_write_stream_reader_asleep_in_order)
{
	struct oneway o = {
		.write_size = 1024, .total = 8 << 20, .reader_delay_ms = 300};
	struct sm_counters c;

	if (start(e))
		return;
	ASSERT_EQ(run(e, &o), 0, "8 MiB in 1 KiB writes, exact and in order");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	if (!(env_feat(e) & SM_FEAT_KERN_CTX)) {
		/* the window variant cannot wait for the queue: at once */
		ASSERT_EQ(c.bulk_fallbacks, 1, "the stream moved to the stack");
		ASSERT_LT(c.bytes_redirected, SM_RCVBUF_FLOOR,
			  "before the receiver was the floor behind");
		ASSERT_GE(c.sockets_left, 1,
			  "the receiver left once it had read");
		return;
	}
	ASSERT_EQ(c.bulk_fallbacks, 0, "the queue never emptied");
	ASSERT_EQ(c.rcvbuf_fallbacks, 1, "the receiver fell behind");
	/* the check follows each redirect: the message that found more than
	 * the floor queued (4097 KiB) is the last one redirected */
	ASSERT_EQ(c.bytes_redirected, SM_RCVBUF_FLOOR + 2 * 1024,
		  "redirected until SM_RCVBUF_FLOOR was passed");
	ASSERT_GE(c.sockets_left, 1, "the receiver left once it had read");
}

TEST(request_response_stays_redirected)
{
	struct oneway o = {.write_size = 1024, .total = 2000 * 1024, .rr = 1};
	struct sm_counters c;

	if (start(e))
		return;
	ASSERT_EQ(run(e, &o), 0, "2000 round trips, exact");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.bulk_fallbacks, 0, "replies reset the run");
	ASSERT_EQ(c.msgs_passed, 0, "nothing through the stack");
	ASSERT_EQ(c.bytes_redirected, 2 * o.total, "every byte redirected");
}

TEST(large_write_stream_stays_redirected)
{
	/* no more than SM_RCVBUF_FLOOR: a verifying reader can fall behind */
	struct oneway o = {.write_size = 64 << 10, .total = SM_RCVBUF_FLOOR};
	struct sm_counters c;

	if (start(e))
		return;
	ASSERT_EQ(run(e, &o), 0, "4 MiB in 64 KiB writes, exact");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.bulk_fallbacks, 0, "large writes are not a small stream");
	ASSERT_EQ(c.bytes_redirected, o.total, "every byte redirected");
}
