// LeakTarget is leakgate's JVM reference target: a plain com.sun.net.httpserver service with
// switchable leaks, so the gate is proven against a garbage-collected runtime this project did
// not write. JDK only (11 or newer), no dependencies: one file, compiled by
// targets/java/build.sh.
//
// Endpoints on -listen (an HttpServer on a fixed pool of 16 threads):
//
//   GET /cache/{key}  unbounded-cache: a static HashMap grows by one value per new key, never
//                     evicted; bounded-cache: a LinkedHashMap dropping its eldest entry past
//                     -cache-capacity (FIFO);
//                     none: the value is built and dropped
//   GET /proxy        calls /upstream on a second HttpServer of this process (loopback) with a
//                     shared java.net.http.HttpClient, body as an InputStream;
//                     unclosed-bodies: the stream is never read nor closed (the connection never
//                     goes back to the pool: both fds, the client's buffers and its place in the
//                     client's selector stay); none: the stream is drained and closed
//   GET /watch        submits a watcher task that parks on a future nobody completes;
//                     leaked-tasks: nothing ever cancels it (one parked pool thread per request);
//                     none: it is cancelled when the request ends
//   GET /healthz      ok
//
// Endpoints on -admin-listen: /metrics (Prometheus text: requests, cache entries, live threads,
// open upstream responses, GC counts and times from the GarbageCollectorMXBeans, heap used),
// /healthz.
//
// Once every listener is bound it prints "listening http=ADDR admin=ADDR" on stdout, so a
// caller that passed port 0 can read the real ports. SIGTERM or SIGINT stop it.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.ref.Reference;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

public final class LeakTarget {
    static final String NONE = "none";
    static final String UNBOUNDED_CACHE = "unbounded-cache";
    static final String BOUNDED_CACHE = "bounded-cache";
    static final String UNCLOSED_BODIES = "unclosed-bodies";
    static final String LEAKED_TASKS = "leaked-tasks";
    static final List<String> MODES =
            List.of(NONE, UNBOUNDED_CACHE, BOUNDED_CACHE, UNCLOSED_BODIES, LEAKED_TASKS);

    /** Threads of the service's HttpServer. */
    static final int SERVICE_THREADS = 16;

    /**
     * The cache: static, as the classic leak's is (a map on a class, nobody's to clear). A
     * HashMap for unbounded-cache; a LinkedHashMap in insertion order that drops its eldest
     * entry past -cache-capacity (FIFO) for bounded-cache. Guarded by its own lock.
     */
    static Map<String, byte[]> cache = new HashMap<>();

    final String leak;
    final int leakBytes;
    final int capacity;
    final byte[] upstreamBody;
    final HttpClient client;
    final URI upstream;
    /** Runs the /watch watchers: a thread per parked task, reused once a task ends. */
    final ExecutorService watchers = Executors.newCachedThreadPool(named("watcher", true));

    final AtomicLong requests = new AtomicLong(); // requests_served_total
    final AtomicLong openUpstream = new AtomicLong(); // open_upstream_responses
    final AtomicLong parkedWatchers = new AtomicLong(); // watchers_parked

    LeakTarget(String leak, int leakBytes, int capacity, URI upstream) {
        this.leak = leak;
        this.leakBytes = leakBytes;
        this.capacity = capacity;
        this.upstream = upstream;
        if (leak.equals(BOUNDED_CACHE)) {
            cache = new LinkedHashMap<>(16, 0.75f, false) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, byte[]> eldest) {
                    return size() > capacity;
                }
            };
        }
        this.upstreamBody = new byte[leakBytes];
        Arrays.fill(upstreamBody, (byte) 'u');
        // One client for every call, as services share one: HTTP/1.1, its own pool.
        this.client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .executor(Executors.newFixedThreadPool(4, named("client", true)))
                .build();
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("leaktarget: " + e.getMessage());
            System.exit(1);
        }
    }

    static void run(String[] args) throws IOException {
        String listen = "127.0.0.1:8080";
        String adminListen = "127.0.0.1:0";
        String leak = NONE;
        int leakBytes = 190;
        int capacity = 20000;
        for (int i = 0; i < args.length; i++) {
            String flag = args[i].replaceFirst("^--", "-");
            if (flag.equals("-h") || flag.equals("-help")) {
                System.out.println(usage());
                return;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("flag needs a value: " + args[i] + "\n" + usage());
            }
            String v = args[++i];
            switch (flag) {
                case "-listen": listen = v; break;
                case "-admin-listen": adminListen = v; break;
                case "-leak": leak = v; break;
                case "-leak-bytes": leakBytes = number(flag, v); break;
                case "-cache-capacity": capacity = number(flag, v); break;
                default: throw new IllegalArgumentException("unknown flag " + args[i - 1] + "\n" + usage());
            }
        }
        if (!MODES.contains(leak)) {
            throw new IllegalArgumentException("-leak \"" + leak + "\": want one of " + String.join(", ", MODES));
        }
        if (leakBytes < 0) {
            throw new IllegalArgumentException("-leak-bytes " + leakBytes + ": must not be negative");
        }
        if (leak.equals(BOUNDED_CACHE) && capacity < 1) {
            throw new IllegalArgumentException("-cache-capacity " + capacity + ": bounded-cache needs at least 1");
        }

        // The JDK's HttpServer writes the headers and the body in separate packets: without
        // TCP_NODELAY each small response waits out the client's delayed ACK (40 ms).
        System.setProperty("sun.net.httpserver.nodelay", "true");
        HttpServer up = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 1024);
        HttpServer svc = HttpServer.create(address("-listen", listen), 1024);
        HttpServer admin = HttpServer.create(address("-admin-listen", adminListen), 64);
        URI upstreamUri = URI.create("http://127.0.0.1:" + up.getAddress().getPort() + "/upstream");
        LeakTarget t = new LeakTarget(leak, leakBytes, capacity, upstreamUri);

        up.createContext("/upstream", t::upstream);
        up.setExecutor(Executors.newFixedThreadPool(8, named("upstream", true)));
        svc.createContext("/cache/", ex -> t.serve(ex, t::cacheGet));
        svc.createContext("/proxy", ex -> t.serve(ex, t::proxy));
        svc.createContext("/watch", ex -> t.serve(ex, t::watch));
        svc.createContext("/healthz", ex -> reply(ex, 200, "ok\n"));
        svc.setExecutor(Executors.newFixedThreadPool(SERVICE_THREADS, named("service", false)));
        admin.createContext("/metrics", ex -> reply(ex, 200, t.metrics()));
        admin.createContext("/healthz", ex -> reply(ex, 200, "ok\n"));
        admin.setExecutor(Executors.newSingleThreadExecutor(named("admin", true)));

        up.start();
        admin.start();
        svc.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // Stop accepting; leaked watchers and held upstream responses do not hold the exit up.
            svc.stop(0);
            admin.stop(0);
            up.stop(0);
        }));
        System.out.println("listening http=" + hostPort(svc) + " admin=" + hostPort(admin));
        System.out.flush();
    }

    static String usage() {
        return "usage: java -cp target/java/leaktarget LeakTarget [-listen HOST:PORT] [-admin-listen HOST:PORT]"
                + " [-leak " + String.join("|", MODES) + "] [-leak-bytes N (190)] [-cache-capacity N (20000)]";
    }

    static int number(String flag, String v) {
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + " \"" + v + "\": not a whole number");
        }
    }

    static InetSocketAddress address(String flag, String v) {
        int colon = v.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException(flag + " \"" + v + "\": want host:port");
        }
        String host = v.substring(0, colon).replaceAll("^\\[|\\]$", "");
        return new InetSocketAddress(host.isEmpty() ? "0.0.0.0" : host, number(flag, v.substring(colon + 1)));
    }

    static String hostPort(HttpServer s) {
        InetSocketAddress a = s.getAddress();
        return a.getAddress().getHostAddress() + ":" + a.getPort();
    }

    static ThreadFactory named(String prefix, boolean daemon) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread th = new Thread(r, prefix + "-" + n.incrementAndGet());
            th.setDaemon(daemon);
            return th;
        };
    }

    /** A handler that answers with a status and a text body. */
    interface Handler {
        Reply handle(HttpExchange ex) throws Exception;
    }

    record Reply(int status, String body) {}

    /** Counts the request, runs the handler, answers; a failure is a 502 or 500 with its message. */
    void serve(HttpExchange ex, Handler h) throws IOException {
        requests.incrementAndGet();
        Reply r;
        try {
            ex.getRequestBody().readAllBytes();
            r = h.handle(ex);
        } catch (Exception e) {
            r = new Reply(500, "error: " + e + "\n");
        }
        reply(ex, r.status, r.body);
    }

    static void reply(HttpExchange ex, int status, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }

    /** GET /cache/{key}: the value cached under key, built on a miss. */
    Reply cacheGet(HttpExchange ex) {
        String key = ex.getRequestURI().getPath().substring("/cache/".length());
        byte[] v = getOrInsert(key);
        return new Reply(200, v.length + " bytes\n");
    }

    byte[] getOrInsert(String key) {
        if (leak.equals(NONE) || leak.equals(UNCLOSED_BODIES) || leak.equals(LEAKED_TASKS)) {
            return makeValue(leakBytes);
        }
        synchronized (cache) {
            // The bug (unbounded-cache): nothing ever leaves the map. (bounded-cache: the
            // LinkedHashMap drops its eldest entry on the put past capacity.)
            return cache.computeIfAbsent(key, k -> makeValue(leakBytes));
        }
    }

    /** A fresh value of n bytes, like a computed response: the byte[] the class histogram shows. */
    static byte[] makeValue(int n) {
        byte[] v = new byte[n];
        Arrays.fill(v, (byte) 'Z');
        return v;
    }

    /** What /proxy calls: the body goes out in two flushed halves, as a streaming upstream's. */
    void upstream(HttpExchange ex) throws IOException {
        ex.getRequestBody().readAllBytes();
        ex.sendResponseHeaders(200, upstreamBody.length);
        try (OutputStream os = ex.getResponseBody()) {
            int half = upstreamBody.length / 2;
            os.write(upstreamBody, 0, half);
            os.flush();
            os.write(upstreamBody, half, upstreamBody.length - half);
        }
    }

    /** GET /proxy: calls the upstream and answers with its status (and, fixed, its length). */
    Reply proxy(HttpExchange ex) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(upstream).timeout(Duration.ofSeconds(10)).GET().build();
        HttpResponse<InputStream> resp = client.send(req, HttpResponse.BodyHandlers.ofInputStream());
        openUpstream.incrementAndGet();
        if (leak.equals(UNCLOSED_BODIES)) {
            // The bug: only the status is looked at; the body stream is neither read nor
            // closed. The connection never goes back to the client's pool: its socket (and the
            // upstream's end of it), its buffers and its selector registration stay.
            return new Reply(200, "upstream answered " + resp.statusCode() + "\n");
        }
        long n;
        try (InputStream body = resp.body()) {
            n = body.transferTo(OutputStream.nullOutputStream());
        } finally {
            openUpstream.decrementAndGet();
        }
        return new Reply(200, "upstream sent " + n + " bytes\n");
    }

    /** GET /watch: starts a watcher for an event and answers at once. */
    Reply watch(HttpExchange ex) {
        CompletableFuture<Void> event = new CompletableFuture<>(); // nobody ever completes it
        byte[] state = makeValue(leakBytes);
        Future<?> watcher = watchers.submit(() -> watchItem(event, state));
        if (!leak.equals(LEAKED_TASKS)) {
            // Fixed: the watcher belongs to the request and ends with it.
            watcher.cancel(true);
        }
        // The bug (leaked-tasks): nothing cancels the watcher, it parks forever on its thread.
        return new Reply(202, "watch started\n");
    }

    /** Waits for an event that never comes, or for its cancellation (an interrupt). */
    void watchItem(CompletableFuture<Void> event, byte[] state) {
        parkedWatchers.incrementAndGet();
        try {
            event.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            // the event failed: nothing to watch
        } finally {
            parkedWatchers.decrementAndGet();
            Reference.reachabilityFence(state); // the watcher holds its state while it waits
        }
    }

    /** /metrics in the Prometheus text format. */
    String metrics() {
        StringBuilder b = new StringBuilder();
        int cache;
        synchronized (LeakTarget.cache) {
            cache = LeakTarget.cache.size();
        }
        MemoryMXBean mem = ManagementFactory.getMemoryMXBean();
        metric(b, "requests_served_total", "counter", "Requests served on /cache, /proxy and /watch.", requests.get());
        metric(b, "cache_entries", "gauge", "Entries in the cache.", cache);
        metric(b, "open_upstream_responses", "gauge", "Upstream responses received whose body is not closed.", openUpstream.get());
        metric(b, "watchers_parked", "gauge", "Watcher tasks parked, waiting for their event.", parkedWatchers.get());
        metric(b, "jvm_threads_live", "gauge", "Live threads of the JVM.", ManagementFactory.getThreadMXBean().getThreadCount());
        metric(b, "jvm_memory_heap_used_bytes", "gauge", "Bytes used in the heap.", mem.getHeapMemoryUsage().getUsed());
        b.append("# HELP jvm_gc_collections_total Collections by collector.\n# TYPE jvm_gc_collections_total counter\n");
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            b.append("jvm_gc_collections_total{gc=\"").append(gc.getName()).append("\"} ")
                    .append(gc.getCollectionCount()).append('\n');
        }
        b.append("# HELP jvm_gc_collection_seconds_total Time spent collecting, by collector.\n"
                + "# TYPE jvm_gc_collection_seconds_total counter\n");
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            b.append("jvm_gc_collection_seconds_total{gc=\"").append(gc.getName()).append("\"} ")
                    .append(gc.getCollectionTime() / 1000.0).append('\n');
        }
        return b.toString();
    }

    static void metric(StringBuilder b, String name, String kind, String help, long v) {
        b.append("# HELP ").append(name).append(' ').append(help).append('\n')
                .append("# TYPE ").append(name).append(' ').append(kind).append('\n')
                .append(name).append(' ').append(v).append('\n');
    }
}
