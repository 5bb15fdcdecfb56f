// Command leaktarget is leakgate's Go reference target: a plain net/http service with
// switchable leaks, so the gate is proven against a runtime this project did not write.
//
// It uses the standard library only (net/http, expvar, net/http/pprof, runtime).
//
// Endpoints on -listen:
//
//	GET /cache/{key}  unbounded-cache: a global map grows by one value per new key, never evicted;
//	                  bounded-cache: the same map, FIFO eviction at -cache-capacity;
//	                  none: the value is built and dropped
//	GET /proxy        calls /upstream on this same server with its own http.Client;
//	                  unclosed-bodies: resp.Body is never read nor closed (the classic Go leak:
//	                  the persistConn read and write loop goroutines and both fds stay);
//	                  none: io.Copy(io.Discard, resp.Body) and resp.Body.Close()
//	GET /watch        starts a goroutine that waits on a channel nobody sends on;
//	                  leaked-goroutines: it waits forever; none: it ends with the request
//	GET /upstream     the upstream /proxy calls (-leak-bytes bytes, sent in two chunks)
//	GET /healthz      ok
//
// Endpoints on -admin-listen: /debug/vars (expvar, with memstats and goroutines), /debug/pprof/*,
// /metrics (Prometheus text), /healthz.
//
// Once both listeners are bound it prints "listening http=ADDR admin=ADDR" on stdout, so a
// caller that passed port 0 can read the real ports. SIGTERM or SIGINT shut it down gracefully.
package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/* on http.DefaultServeMux (the admin mux)
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The leak modes of -leak.
const (
	leakNone             = "none"
	leakUnboundedCache   = "unbounded-cache"
	leakBoundedCache     = "bounded-cache"
	leakUnclosedBodies   = "unclosed-bodies"
	leakLeakedGoroutines = "leaked-goroutines"
)

var leakModes = []string{leakNone, leakUnboundedCache, leakBoundedCache, leakUnclosedBodies, leakLeakedGoroutines}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address of the service (`host:port`, port 0: any free port)")
	adminListen := flag.String("admin-listen", "127.0.0.1:0", "address of the admin listener: /debug/vars, /debug/pprof/*, /metrics, /healthz")
	leak := flag.String("leak", leakNone, "leak mode: "+strings.Join(leakModes, "|"))
	leakBytes := flag.Int("leak-bytes", 190, "bytes kept per request by the cache leaks (and the upstream body size)")
	capacity := flag.Int("cache-capacity", 20000, "entries the bounded-cache keeps before it evicts the oldest")
	flag.Parse()
	if err := run(*listen, *adminListen, *leak, *leakBytes, *capacity); err != nil {
		fmt.Fprintf(os.Stderr, "leaktarget: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, adminListen, leak string, leakBytes, capacity int) error {
	if !validMode(leak) {
		return fmt.Errorf("-leak %q: want one of %s", leak, strings.Join(leakModes, ", "))
	}
	if leakBytes < 0 {
		return fmt.Errorf("-leak-bytes %d: must not be negative", leakBytes)
	}
	if leak == leakBoundedCache && capacity < 1 {
		return fmt.Errorf("-cache-capacity %d: bounded-cache needs at least 1", capacity)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", adminListen)
	if err != nil {
		ln.Close()
		return err
	}

	s := newService(leak, leakBytes, capacity, "http://"+ln.Addr().String()+"/upstream")
	http.HandleFunc("/metrics", s.metrics)
	http.HandleFunc("/healthz", healthz)
	// expvar publishes "memstats" and "cmdline" on /debug/vars of http.DefaultServeMux;
	// "goroutines" is runtime.NumGoroutine(), the count leakgate reads without a profile.
	expvar.NewString("leak").Set(leak)
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))

	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	admin := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- srv.Serve(ln) }()
	go func() { errs <- admin.Serve(adminLn) }()
	fmt.Printf("listening http=%s admin=%s\n", ln.Addr(), adminLn.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	// Graceful: stop accepting, close idle connections, give active requests a moment.
	// Leaked goroutines and held upstream responses do not hold the exit up.
	shutdown, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if aerr := admin.Shutdown(shutdown); err == nil {
		err = aerr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // the connections still busy are dropped with the process
	}
	return err
}

func validMode(m string) bool {
	for _, x := range leakModes {
		if m == x {
			return true
		}
	}
	return false
}

// service holds what the handlers share.
type service struct {
	leak      string
	leakBytes int
	cache     *cache
	// client calls /upstream. It has its own Transport (not http.DefaultTransport), with a
	// pool large enough for the load's concurrency so the fixed mode reuses connections.
	client       *http.Client
	upstreamURL  string
	upstreamBody []byte

	requests     atomic.Uint64 // requests_served_total
	openUpstream atomic.Int64  // open_upstream_responses: received, body not closed yet
}

func newService(leak string, leakBytes, capacity int, upstreamURL string) *service {
	var c *cache
	switch leak {
	case leakUnboundedCache:
		c = newCache(true, 0)
	case leakBoundedCache:
		c = newCache(true, capacity)
	default:
		c = newCache(false, 0)
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	body := make([]byte, leakBytes)
	for i := range body {
		body[i] = 'u'
	}
	return &service{
		leak:         leak,
		leakBytes:    leakBytes,
		cache:        c,
		client:       &http.Client{Transport: transport},
		upstreamURL:  upstreamURL,
		upstreamBody: body,
	}
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/cache/", s.cacheGet)
	mux.HandleFunc("/proxy", s.proxy)
	mux.HandleFunc("/watch", s.watch)
	mux.HandleFunc("/upstream", s.upstream)
	mux.HandleFunc("/healthz", healthz)
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, "ok\n")
}

// cacheGet answers GET /cache/{key}: the value cached under key, built on a miss.
func (s *service) cacheGet(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	key := strings.TrimPrefix(r.URL.Path, "/cache/")
	v := s.cache.getOrInsert(key, s.leakBytes)
	fmt.Fprintf(w, "%d bytes\n", len(v))
}

// cache is a map of values by key: unbounded (the leak), bounded by FIFO eviction at
// capacity, or not retaining at all (fixed).
type cache struct {
	retain   bool
	capacity int // 0: unbounded
	mu       sync.Mutex
	entries  map[string][]byte
	order    []string // bounded: keys in insertion order, a ring of capacity slots
	next     int      // bounded: the ring slot the next insertion takes (the oldest key)
}

func newCache(retain bool, capacity int) *cache {
	c := &cache{retain: retain, capacity: capacity, entries: make(map[string][]byte)}
	if capacity > 0 {
		c.order = make([]string, 0, capacity)
	}
	return c
}

func (c *cache) getOrInsert(key string, n int) []byte {
	if !c.retain {
		return makeValue(n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.entries[key]; ok {
		return v
	}
	v := makeValue(n)
	key = strings.Clone(key) // do not keep the whole request path alive
	switch {
	case c.capacity == 0:
		// The bug: nothing ever leaves the map.
	case len(c.order) < c.capacity:
		c.order = append(c.order, key)
	default:
		delete(c.entries, c.order[c.next])
		c.order[c.next] = key
		c.next = (c.next + 1) % c.capacity
	}
	c.entries[key] = v
	return v
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// makeValue builds a fresh value of n bytes, like a computed response would be. Heap profiles
// name this function as the site that grows in the cache leaks.
func makeValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'Z'
	}
	return v
}

// upstream is what /proxy calls: the body goes out in two chunks, as a streaming upstream
// would send it.
func (s *service) upstream(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(s.upstreamBody)))
	half := len(s.upstreamBody) / 2
	w.Write(s.upstreamBody[:half])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	w.Write(s.upstreamBody[half:])
}

// proxy answers GET /proxy by calling /upstream on this server.
func (s *service) proxy(w http.ResponseWriter, _ *http.Request) {
	s.requests.Add(1)
	// No request context, as in the many services that call http.Get or build the request
	// with http.NewRequest: nothing cancels the call when this handler returns. (A context
	// tied to the incoming request would close the connection at the end of the handler and
	// hide the leak.)
	req, err := http.NewRequest(http.MethodGet, s.upstreamURL, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := s.client.Do(req)
	if err != nil {
		http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	body := &countedBody{ReadCloser: resp.Body, open: &s.openUpstream}
	s.openUpstream.Add(1)
	if s.leak == leakUnclosedBodies {
		// The bug: only the status is looked at; the body is neither read nor closed. The
		// connection never goes back to the pool: its read and write loop goroutines, its
		// buffers and both ends' fds (and the server goroutine of the other end) stay.
		fmt.Fprintf(w, "upstream answered %s\n", resp.Status)
		return
	}
	n, err := io.Copy(io.Discard, body)
	body.Close()
	if err != nil {
		http.Error(w, "upstream body: "+err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(w, "upstream sent %d bytes\n", n)
}

// countedBody counts an upstream response as open until its body is closed.
type countedBody struct {
	io.ReadCloser
	open   *atomic.Int64
	closed atomic.Bool
}

func (b *countedBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
	return b.ReadCloser.Close()
}

// watch answers GET /watch: it starts a watcher for an event and answers at once.
func (s *service) watch(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	ctx := r.Context()
	if s.leak == leakLeakedGoroutines {
		// The bug: the watcher gets a context that never ends instead of the request's.
		ctx = context.Background()
	}
	item(ctx, s.leakBytes)
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "watch started\n")
}

// item starts the goroutine watching one item; a goroutine profile shows the watchers as
// "created by main.item".
func item(ctx context.Context, n int) {
	events := make(chan struct{}) // nobody ever sends on it
	state := makeValue(n)
	go watchItem(ctx, events, state)
}

// watchItem waits for an event that never comes, or for its context to end.
func watchItem(ctx context.Context, events <-chan struct{}, state []byte) {
	select {
	case <-events:
	case <-ctx.Done():
	}
	runtime.KeepAlive(state)
}

// metrics answers /metrics on the admin listener, in the Prometheus text format.
func (s *service) metrics(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	metric := func(name, kind, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n",
			name, help, name, kind, name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	metric("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	metric("go_memstats_heap_inuse_bytes", "gauge", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
	metric("go_memstats_heap_alloc_bytes", "gauge", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	metric("go_memstats_next_gc_bytes", "gauge", "Heap size target of the next GC cycle.", float64(ms.NextGC))
	metric("go_gc_cycles_total", "counter", "Completed GC cycles.", float64(ms.NumGC))
	metric("requests_served_total", "counter", "Requests served on /cache, /proxy and /watch.", float64(s.requests.Load()))
	metric("cache_entries", "gauge", "Entries in the cache.", float64(s.cache.len()))
	metric("open_upstream_responses", "gauge", "Upstream responses received whose body is not closed.", float64(s.openUpstream.Load()))
	io.WriteString(w, b.String())
}
