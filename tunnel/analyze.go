package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"
)

// The connection analyzer's session (`cmg analyze`). A connector's hello may list
// the capability CapAnalyze: the gateway then checks its certificate, identity,
// allow-list and routes exactly as for a connector and answers the ack, but does
// not register the session (no device is ever routed to it, and a running
// connector of the same name keeps its own). Instead the gateway itself sends one
// probe request per accepted route over that session — the request path of a
// device request, from the gateway's side of the tunnel to the role and back —
// and reports each outcome on the control stream. The analyzer serves the probes
// with the connector's own role proxy, so the round trip covers the gateway, the
// tunnel over the transport in use, the connector's configuration and the role.
// It needs no device credential: the connector's certificate is what the gateway
// checks, as for the tunnel itself.
const CapAnalyze = "analyze"

// ProbeHeader marks the gateway's probe requests.
const ProbeHeader = "Cmg-Probe"

// probeSessionLimit bounds an analyzer session on the gateway.
const probeSessionLimit = 60 * time.Second

// probeTimeout bounds one probe request.
const probeTimeout = 15 * time.Second

// ProbeResult is the gateway's account of one probe request.
type ProbeResult struct {
	RoleID string   `json:"role_id"`
	Kind   RoleKind `json:"kind"`
	Path   string   `json:"path"`
	// Status is the HTTP status the gateway received, Reason the CMG-Error
	// header when the connector answered the error itself (the role was not
	// reached), Error a failure of the tunnel itself.
	Status   int     `json:"status,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_seconds"`
	// Done marks the last message: every accepted route has been probed.
	Done bool `json:"done,omitempty"`
}

// OK reports whether the role answered (any status the role itself gave).
func (p ProbeResult) OK() bool { return p.Error == "" && p.Reason == "" && p.Status > 0 }

// ProbePath is the request sent to a role of kind k, after its public prefix: one
// that a real role of that kind answers without a body or credentials.
func ProbePath(k RoleKind) string {
	switch k {
	case ManagementPoint:
		return "SMS_MP/.sms_aut?MPLIST"
	case SoftwareUpdatePoint:
		return "selfupdate/wuident.cab"
	}
	return ""
}

func (s *Session) analyzer() bool { return slices.Contains(s.Capabilities, CapAnalyze) }

// runProbes serves an analyzer session: one probe per accepted route, each
// result on the control stream, then it waits for the analyzer to close.
func (s *Server) runProbes(ctx context.Context, sess *Session) {
	if s.m != nil {
		s.m.connects.WithLabelValues(sess.Name, sess.Transport, "analyze").Inc()
	}
	s.log.Info("tunnel: connection analyzer connected", "connector", sess.Name, "site", sess.Site,
		"transport", sess.Transport, "remote", sess.RemoteAddr.String())
	stop := context.AfterFunc(ctx, sess.Close)
	defer stop()
	limit := time.AfterFunc(probeSessionLimit, sess.Close)
	defer limit.Stop()
	go s.refuseStreams(sess)
	routes := sess.Routes()
	for i, r := range routes {
		res := s.probe(sess, r)
		res.Done = i == len(routes)-1
		s.log.Info("tunnel: analyzer probe", "connector", sess.Name, "role_id", r.RoleID, "status", res.Status,
			"reason", res.Reason, "err", res.Error)
		if err := sendProbeResult(sess, res); err != nil {
			break
		}
	}
	if len(routes) == 0 {
		_ = sendProbeResult(sess, ProbeResult{Done: true})
	}
	<-sess.mux.CloseChan()
	close(sess.done)
}

func sendProbeResult(sess *Session, res ProbeResult) error {
	payload, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return sess.Send(&Message{Type: MsgProbeResult, Payload: payload})
}

// probe sends one probe request for route r on the analyzer's session.
func (s *Server) probe(sess *Session, r Route) (res ProbeResult) {
	prefix := "CCM_Proxy_MutualAuth"
	if !r.Accepts(AuthMutual) {
		prefix = "CCM_Proxy_ServerAuth"
	}
	res = ProbeResult{RoleID: r.RoleID, Kind: r.Kind, Path: "/" + prefix + "/" + r.RoleID + "/" + ProbePath(r.Kind)}
	start := s.cfg.Now()
	defer func() { res.Duration = s.cfg.Now().Sub(start).Seconds() }()
	st, err := sess.Open()
	if err != nil {
		res.Error = "open a stream: " + err.Error()
		return res
	}
	defer sess.Release()
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(probeTimeout))
	req := "GET " + res.Path + " HTTP/1.1\r\nHost: cmg-probe\r\n" + ProbeHeader + ": 1\r\nCmg-Request-Id: probe-" +
		strconv.FormatInt(start.UnixNano(), 36) + "\r\nCmg-Gateway-Instance: " + strconv.Itoa(s.cfg.Instance) +
		"\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(st, req); err != nil {
		res.Error = "send the probe: " + err.Error()
		return res
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), nil)
	if err != nil {
		res.Error = "read the answer: " + err.Error()
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	res.Status = resp.StatusCode
	res.Reason = resp.Header.Get("Cmg-Error")
	return res
}

// AnalyzeResult is what one analyzer session found.
type AnalyzeResult struct {
	// TLS is the connection state after the handshake.
	TLS tls.ConnectionState
	Ack *Ack
	// Probes are the gateway's probe results, one per accepted route.
	Probes []ProbeResult
}

// ErrRefused wraps an ack that refused the connector.
var ErrRefused = errors.New("the gateway refused the connector")

// Analyze runs an analyzer session to instance idx over transport t: TLS, the
// hello with CapAnalyze, the ack, then it serves the gateway's probe requests
// with handler and collects the gateway's results until every accepted route
// has been probed or ctx ends. The hello's routes are the connector's.
func Analyze(ctx context.Context, t Transport, idx int, hello Hello, handler http.Handler, log *slog.Logger) (*AnalyzeResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := t.Dial(ctx, idx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res := &AnalyzeResult{TLS: conn.ConnectionState()}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	hello.Capabilities = append(slices.Clone(hello.Capabilities), CapAnalyze)
	if err := WriteHello(conn, &hello); err != nil {
		return res, fmt.Errorf("send hello: %w", err)
	}
	ack, err := ReadAck(conn)
	if err != nil {
		return res, fmt.Errorf("read ack: %w", err)
	}
	res.Ack = ack
	if ack.Error != "" {
		return res, fmt.Errorf("%w: %s", ErrRefused, ack.Error)
	}
	_ = conn.SetDeadline(noDeadline)
	y := yamux.DefaultConfig()
	y.LogOutput = nil
	y.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	mux, err := yamux.Server(conn, y)
	if err != nil {
		return res, err
	}
	defer mux.Close()
	stop := context.AfterFunc(ctx, func() { mux.Close() })
	defer stop()
	ctrl, err := mux.AcceptStreamWithContext(ctx)
	if err != nil {
		return res, fmt.Errorf("accept control stream: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: probeTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() { _ = srv.Serve(sessionListener{mux}) }()
	defer srv.Close()
	br := bufio.NewReader(ctrl)
	for {
		m, err := ReadMessage(br)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return res, fmt.Errorf("waiting for the gateway's probes: %w", err)
		}
		if m.Type != MsgProbeResult {
			continue
		}
		var p ProbeResult
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			return res, fmt.Errorf("bad probe result: %w", err)
		}
		if p.RoleID != "" {
			res.Probes = append(res.Probes, p)
		}
		if p.Done {
			return res, nil
		}
	}
}
