// Command notifyswarm holds many devices' notification channels
// (loadtest/notifyclient) in one process, outside the race-instrumented test
// binary, so that the end-to-end tests can time deliveries to 10,000 devices and
// measure the gateway's memory per channel. It reads its devices from a JSON
// file, writes its API address to a file and answers the test on that address:
//
//	GET /stats        sums of every device's counters
//	GET /tally?data=D how many devices got the event whose data is D, and when
//	GET /received     per device, the data of every event in arrival order
//	GET /devices      per device, its notifyclient.Stats
//	POST /stop        closes every channel (the process then waits to be killed)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/notifyclient"
)

// Config is the swarm's input file.
type Config struct {
	CAFile  string   `json:"ca_file"`
	Query   string   `json:"query,omitempty"`
	Devices []Device `json:"devices"`
	// RampPerSecond paces the first connects (0: 2,000/s).
	RampPerSecond int `json:"ramp_per_second,omitempty"`
	MinBackoffMS  int `json:"min_backoff_ms,omitempty"`
	MaxBackoffMS  int `json:"max_backoff_ms,omitempty"`
}

// Device is one simulated device.
type Device struct {
	Token string   `json:"token"`
	URLs  []string `json:"urls"`
	IP    string   `json:"ip"`
}

type tally struct {
	Count   int   `json:"count"`
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
	Devices []int `json:"devices,omitempty"`
}

type swarm struct {
	clients  []*notifyclient.Client
	mu       sync.Mutex
	tallies  map[string]*tally
	received [][]string
}

func main() {
	cfgFile := flag.String("config", "", "devices `file` (JSON)")
	addrFile := flag.String("addr-file", "", "write the API address to this `file`")
	flag.Parse()
	data, err := os.ReadFile(*cfgFile)
	if err != nil {
		log.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		log.Fatal(err)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatal("no CA certificate")
	}
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	s := &swarm{tallies: map[string]*tally{}, received: make([][]string, len(cfg.Devices))}
	for i, d := range cfg.Devices {
		c, err := notifyclient.New(notifyclient.Config{
			URLs: d.URLs, Query: cfg.Query, TLS: tlsCfg, Token: d.Token, LocalAddr: net.ParseIP(d.IP),
			MinBackoff: time.Duration(cfg.MinBackoffMS) * time.Millisecond,
			MaxBackoff: time.Duration(cfg.MaxBackoffMS) * time.Millisecond,
			OnEvent:    func(ev notifyclient.Event) { s.record(i, ev) },
		})
		if err != nil {
			log.Fatal(err)
		}
		s.clients = append(s.clients, c)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("GET /tally", s.tally)
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(s.received)
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, _ *http.Request) {
		out := make([]notifyclient.Stats, len(s.clients))
		for i, c := range s.clients {
			out[i] = c.Stats()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	var running sync.WaitGroup
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		cancel()
		running.Wait()
		fmt.Fprintln(w, "stopped")
	})
	go func() { log.Fatal(http.Serve(ln, mux)) }()
	if err := os.WriteFile(*addrFile+".tmp", []byte(ln.Addr().String()), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
		log.Fatal(err)
	}
	rate := cfg.RampPerSecond
	if rate <= 0 {
		rate = 2000
	}
	gap := time.Second / time.Duration(rate)
	start := time.Now()
	for i, c := range s.clients {
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		running.Add(1)
		go func() { defer running.Done(); _ = c.Run(ctx) }()
	}
	select {}
}

func (s *swarm) record(i int, ev notifyclient.Event) {
	now := time.Now().UnixNano()
	key := string(ev.Data)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tallies[key]
	if t == nil {
		t = &tally{FirstNS: now}
		s.tallies[key] = t
	}
	t.Count++
	t.LastNS = now
	if len(t.Devices) < 100 {
		t.Devices = append(t.Devices, i)
	}
	s.received[i] = append(s.received[i], key)
}

func (s *swarm) stats(w http.ResponseWriter, _ *http.Request) {
	var sum struct {
		Devices   int   `json:"devices"`
		Connected int   `json:"connected"`
		Connects  int64 `json:"connects"`
		Failures  int64 `json:"failures"`
		Drops     int64 `json:"drops"`
		Events    int64 `json:"events"`
	}
	var connected atomic.Int64
	for _, c := range s.clients {
		st := c.Stats()
		if st.Connected {
			connected.Add(1)
		}
		sum.Connects += st.Connects
		sum.Failures += st.Failures
		sum.Drops += st.Drops
		sum.Events += st.Events
	}
	sum.Devices, sum.Connected = len(s.clients), int(connected.Load())
	_ = json.NewEncoder(w).Encode(sum)
}

func (s *swarm) tally(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t := s.tallies[r.URL.Query().Get("data")]
	var out tally
	if t != nil {
		out = *t
		out.Devices = append([]int(nil), t.Devices...)
	}
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}
