package tunnel

import (
	"bufio"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process used so far (both ends of the tunnel
// run in it): with the machine shared, it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSession is a gateway with one connector's session over TCP-TLS on
// loopback; the connector answers every stream with a short HTTP response.
func benchSession(b *testing.B) *Session {
	p := newTestPKI(b, "cp1")
	g := startServer(b, p)
	startClient(b, p, "cp1", g.port(), []Route{mpRoute})
	var s *Session
	eventually(b, "the session", func() bool {
		s = g.srv.Registry().Pick(AuthMutual, mpID)
		return s != nil
	})
	return s
}

// BenchmarkStreamOpen is what a request pays for its stream alone: open a
// fresh stream, send a byte so the connector sees it, close it.
func BenchmarkStreamOpen(b *testing.B) {
	s := benchSession(b)
	one := []byte{'\n'}
	b.ReportAllocs()
	start := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		st, err := s.Open()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write(one); err != nil {
			b.Fatal(err)
		}
		st.Close()
		s.Release()
	}
}

// BenchmarkStreamRoundTrip is one small HTTP/1.1 exchange on a fresh stream:
// open, request, the connector's response read to the end, close.
func BenchmarkStreamRoundTrip(b *testing.B) {
	s := benchSession(b)
	req := []byte("GET /CCM_Proxy_MutualAuth/" + mpID + "/x HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n")
	br := bufio.NewReaderSize(nil, 4096)
	b.ReportAllocs()
	start := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		st, err := s.Open()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write(req); err != nil {
			b.Fatal(err)
		}
		br.Reset(st)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		st.Close()
		s.Release()
	}
}
