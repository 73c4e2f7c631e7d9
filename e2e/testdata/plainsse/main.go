// Command plainsse is the comparison for the notification channel's memory
// benchmark: a plain Go net/http TLS server holding server-sent-event channels
// the straightforward way, one handler goroutine per channel waiting on its
// heartbeat ticker. It writes its addresses to a file:
//
//	<device listener> <admin listener>
//
// and serves GET /mem on the admin listener: the open channels and runtime
// memory after a GC.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

func main() {
	certFile := flag.String("cert", "", "server certificate `file`")
	keyFile := flag.String("key", "", "server key `file`")
	heartbeat := flag.Duration("heartbeat", 25*time.Second, "heartbeat interval")
	addrFile := flag.String("addr-file", "", "write the addresses to this `file`")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	var open atomic.Int64
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("id: 0\n\n"))
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		open.Add(1)
		defer open.Add(-1)
		t := time.NewTicker(*heartbeat)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				if _, err := w.Write([]byte(":\n\n")); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
			}
		}
	})
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	srv := &http.Server{Handler: sse, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		log.Fatal(http.Serve(adm, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			_ = json.NewEncoder(w).Encode(map[string]uint64{
				"channels": uint64(open.Load()), "heap_inuse": m.HeapInuse, "stack_inuse": m.StackInuse,
				"sys": m.Sys, "goroutines": uint64(runtime.NumGoroutine()),
			})
		})))
	}()
	if err := os.WriteFile(*addrFile+".tmp", fmt.Appendf(nil, "%s %s", ln.Addr(), adm.Addr()), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(tls.NewListener(ln, tlsCfg)))
}
