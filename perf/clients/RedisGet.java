// RedisGet.java - a JVM redis client as applications write one, for
// perf/real-clients.sh: one connection, GET of one key in a closed loop,
// with the JDK only. Run from source (java RedisGet.java ..., JDK 11+).
//
//   java RedisGet.java block|nio PORT SECONDS [KEY [VALUE]]
//
//   block  java.net.Socket without a timeout (the JDK keeps its file
//          descriptor blocking), its streams
//   nio    a non-blocking SocketChannel under a Selector, as event-loop
//          frameworks (Netty's NIO transport, Lettuce) do
//
// Every reply is checked against the bulk string VALUE (default "xxx"); a
// wrong or short reply, or a closed connection, is an error (exit 1). The
// first second is warm-up (the JIT); then it prints
// {"rps": R, "p50_us": P50, "p99_us": P99} of the rest.
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

public class RedisGet {
	static final long WARMUP_NS = 1_000_000_000L;

	static void fail(String why) {
		System.err.println("RedisGet: " + why);
		System.exit(1);
	}

	static void report(long[] lat, int n, long elapsedNs) {
		if (n == 0)
			fail("no request completed after the warm-up");
		Arrays.sort(lat, 0, n);
		double p50 = lat[Math.min(n - 1, (int) (n * 0.50))] / 1000.0;
		double p99 = lat[Math.min(n - 1, (int) (n * 0.99))] / 1000.0;
		System.out.printf("{\"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f}%n",
				  n * 1e9 / elapsedNs, p50, p99);
	}

	static long[] grow(long[] a, int n) {
		return n < a.length ? a : Arrays.copyOf(a, a.length * 2);
	}

	static void runBlock(int port, long endNs, long beginNs, byte[] req, byte[] want)
		throws Exception {
		Socket s = new Socket();
		s.setTcpNoDelay(true);
		s.connect(new InetSocketAddress("127.0.0.1", port));
		InputStream in = s.getInputStream();
		OutputStream out = s.getOutputStream();
		byte[] got = new byte[want.length];
		long[] lat = new long[1 << 16];
		int n = 0;
		long now = System.nanoTime();
		while (now < endNs) {
			long t0 = now;
			out.write(req);
			out.flush();
			for (int off = 0; off < got.length;) {
				int r = in.read(got, off, got.length - off);
				if (r < 0)
					fail("the server closed the connection");
				if (!Arrays.equals(got, off, off + r, want, off, off + r))
					fail("unexpected reply " + new String(got, 0, off + r, StandardCharsets.ISO_8859_1));
				off += r;
			}
			if (!Arrays.equals(got, want))
				fail("unexpected reply " + new String(got, StandardCharsets.ISO_8859_1));
			now = System.nanoTime();
			if (t0 >= beginNs) {
				lat = grow(lat, n);
				lat[n++] = now - t0;
			}
		}
		s.close();
		report(lat, n, now - beginNs);
	}

	static void runNio(int port, long endNs, long beginNs, byte[] req, byte[] want)
		throws Exception {
		Selector sel = Selector.open();
		SocketChannel ch = SocketChannel.open();
		ch.configureBlocking(false);
		ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
		ch.connect(new InetSocketAddress("127.0.0.1", port));
		SelectionKey key = ch.register(sel, SelectionKey.OP_CONNECT);
		while (!ch.finishConnect()) {
			sel.select();
			sel.selectedKeys().clear();
		}
		ByteBuffer rq = ByteBuffer.wrap(req);
		ByteBuffer got = ByteBuffer.allocate(want.length);
		long[] lat = new long[1 << 16];
		int n = 0;
		long now = System.nanoTime();
		while (now < endNs) {
			long t0 = now;
			rq.clear();
			while (rq.hasRemaining()) {
				if (ch.write(rq) == 0) {
					key.interestOps(SelectionKey.OP_WRITE);
					sel.select();
					sel.selectedKeys().clear();
				}
			}
			got.clear();
			key.interestOps(SelectionKey.OP_READ);
			while (got.hasRemaining()) {
				int r = ch.read(got);
				if (r < 0)
					fail("the server closed the connection");
				if (r == 0) {
					sel.select();
					sel.selectedKeys().clear();
				}
				int p = got.position();
				if (!Arrays.equals(got.array(), p - r, p, want, p - r, p))
					fail("unexpected reply " + new String(got.array(), 0, p, StandardCharsets.ISO_8859_1));
			}
			if (!Arrays.equals(got.array(), want))
				fail("unexpected reply " + new String(got.array(), StandardCharsets.ISO_8859_1));
			now = System.nanoTime();
			if (t0 >= beginNs) {
				lat = grow(lat, n);
				lat[n++] = now - t0;
			}
		}
		ch.close();
		sel.close();
		report(lat, n, now - beginNs);
	}

	public static void main(String[] args) throws Exception {
		if (args.length < 3 || !(args[0].equals("block") || args[0].equals("nio")))
			fail("usage: java RedisGet.java block|nio PORT SECONDS [KEY [VALUE]]");
		int port = Integer.parseInt(args[1]);
		long secs = Long.parseLong(args[2]);
		if (secs < 2)
			fail("SECONDS must be at least 2 (the first is warm-up)");
		String k = args.length > 3 ? args[3] : "key:__rand_int__";
		String v = args.length > 4 ? args[4] : "xxx";
		byte[] req = ("*2\r\n$3\r\nGET\r\n$" + k.length() + "\r\n" + k + "\r\n")
				     .getBytes(StandardCharsets.ISO_8859_1);
		byte[] want = ("$" + v.length() + "\r\n" + v + "\r\n").getBytes(StandardCharsets.ISO_8859_1);
		long start = System.nanoTime();
		long begin = start + WARMUP_NS, end = start + secs * 1_000_000_000L;
		if (args[0].equals("block"))
			runBlock(port, end, begin, req, want);
		else
			runNio(port, end, begin, req, want);
	}
}
