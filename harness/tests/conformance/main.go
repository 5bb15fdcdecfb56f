// An HTTPS server on Go's standard library (HTTP/2 by ALPN, as net/http sets it up for
// ServeTLS) for harness/tests/conformance.rs. The test builds it with `go build` (standard
// library only, GOPROXY=off) and starts it with its self-signed certificate:
//
//	conformance-go -cert cert.pem -key key.pem
//
// It listens on two ports of 127.0.0.1 picked by the kernel and prints them on one line once
// both accept connections: "listening tls=PORT admin=PORT". The TLS port serves the cases;
// each case tags its URLs with ?case=NAME, and the plain admin port tells what the server saw
// of one: GET /stats?case=NAME answers "requests=N connections=M" (M: distinct client
// connections that carried its requests).
//
//	/small        13 bytes
//	/trailers     a body, then trailers (declared up front and one set after the body)
//	/bigheaders   40 response headers of 1 KiB each: more than one 16 KiB frame, so the header
//	              block goes out as HEADERS plus CONTINUATION frames
//	/reset        4 KiB of body, then panic(http.ErrAbortHandler): the stream is reset
//	              (RST_STREAM) mid-response, the connection stays up
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

// Response header count and size of /bigheaders (40 KiB in all).
const (
	bigHeaders    = 40
	bigHeaderSize = 1024
	resetAfter    = 4096
)

func main() {
	cert := flag.String("cert", "", "PEM certificate")
	key := flag.String("key", "", "PEM private key")
	flag.Parse()
	if *cert == "" || *key == "" {
		fmt.Fprintln(os.Stderr, "usage: conformance-go -cert cert.pem -key key.pem")
		os.Exit(64)
	}

	seen := newCases()
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("hello, world\n"))
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("body before trailers\n"))
		w.Header().Set("X-Checksum", "5d41402abc4b2a76")
		// Undeclared, set after the body: sent as a trailer too (http.TrailerPrefix).
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})
	values := bigValues()
	mux.HandleFunc("/bigheaders", func(w http.ResponseWriter, r *http.Request) {
		for i, v := range values {
			w.Header().Set(fmt.Sprintf("X-Big-%02d", i), v)
		}
		_, _ = w.Write([]byte("after big headers\n"))
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("r", resetAfter)))
		w.(http.Flusher).Flush()
		// net/http's way to abort a response: HTTP/2 resets the stream, no log line.
		panic(http.ErrAbortHandler)
	})

	admin := http.NewServeMux()
	admin.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		n, c := seen.get(r.URL.Query().Get("case"))
		fmt.Fprintf(w, "requests=%d connections=%d\n", n, c)
	})

	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.add(r.URL.Query().Get("case"), r.RemoteAddr)
			mux.ServeHTTP(w, r)
		}),
		ErrorLog: log.New(os.Stderr, "conformance-go: ", 0),
	}
	go func() { log.Fatal(http.Serve(adminLn, admin)) }()
	// Both listeners are bound: connections wait in their backlogs until served.
	fmt.Printf("listening tls=%d admin=%d\n", port(tlsLn), port(adminLn))
	log.Fatal(srv.ServeTLS(tlsLn, *cert, *key))
}

// cases counts each case's requests and the client connections (remote addresses) they came on.
type cases struct {
	mu       sync.Mutex
	requests map[string]int
	conns    map[string]map[string]bool
}

func newCases() *cases {
	return &cases{requests: map[string]int{}, conns: map[string]map[string]bool{}}
}

func (c *cases) add(name, remote string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests[name]++
	if c.conns[name] == nil {
		c.conns[name] = map[string]bool{}
	}
	c.conns[name][remote] = true
}

func (c *cases) get(name string) (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[name], len(c.conns[name])
}

func port(l net.Listener) int {
	return l.Addr().(*net.TCPAddr).Port
}

// bigValues are hex strings (Huffman coding shrinks them by about a third at most), so the
// encoded block stays well above one 16 KiB frame.
func bigValues() []string {
	out := make([]string, bigHeaders)
	seed := sha256.Sum256([]byte("conformance"))
	for i := range out {
		var b strings.Builder
		for b.Len() < bigHeaderSize {
			seed = sha256.Sum256(seed[:])
			b.WriteString(hex.EncodeToString(seed[:]))
		}
		out[i] = b.String()[:bigHeaderSize]
	}
	return out
}
