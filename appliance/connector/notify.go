package connector

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tunnel"
)

// NotifyConfig is the connector's side of the notification channel (DESIGN
// section 9), the `notify` section of connector.yaml: the site's API to notify
// devices and the buffer of recent events that resuming devices get what they
// missed from.
type NotifyConfig struct {
	// BufferTTL is how long an event is kept for devices that reconnect with
	// Last-Event-ID; zero keeps none.
	BufferTTL time.Duration `yaml:"buffer_ttl"`
	// PerDevice and Broadcasts bound the events kept per device and to all
	// devices; BufferBytes bounds the whole buffer (oldest events go first).
	PerDevice   int             `yaml:"per_device"`
	Broadcasts  int             `yaml:"broadcasts"`
	BufferBytes configfile.Size `yaml:"buffer_bytes"`
	// MaxPayload bounds an event's data (compact JSON); MaxDevices the devices
	// one request may name.
	MaxPayload configfile.Size `yaml:"max_payload"`
	MaxDevices int             `yaml:"max_devices"`
	// ReportTimeout is how long POST /api/v1/notify waits for the gateway
	// instances' delivery reports.
	ReportTimeout time.Duration `yaml:"report_timeout"`
	// TokenFile, when set, names a file holding a secret that callers of
	// POST /api/v1/notify must send as `Authorization: Bearer <secret>`.
	// Without it the API is guarded only by who can reach the admin listener
	// (loopback by default).
	TokenFile string `yaml:"token_file,omitempty"`
}

// DefaultNotifyConfig returns the defaults.
func DefaultNotifyConfig() NotifyConfig {
	return NotifyConfig{
		BufferTTL:     15 * time.Minute, // one client keepalive cycle of the original product
		PerDevice:     32,
		Broadcasts:    64,
		BufferBytes:   64 << 20,
		MaxPayload:    4 << 10,
		MaxDevices:    notify.MaxTargets,
		ReportTimeout: 5 * time.Second,
	}
}

// Validate reports every problem of the section.
func (c NotifyConfig) Validate() error {
	var ps configfile.Problems
	if c.BufferTTL < 0 {
		ps.Addf("buffer_ttl", "must not be negative")
	}
	if c.PerDevice < 1 || c.PerDevice > notify.MaxReplayEvents/2 {
		ps.Addf("per_device", "must be 1 to %d", notify.MaxReplayEvents/2)
	}
	if c.Broadcasts < 1 || c.Broadcasts > notify.MaxReplayEvents/2 {
		ps.Addf("broadcasts", "must be 1 to %d", notify.MaxReplayEvents/2)
	}
	if c.BufferBytes < 64<<10 {
		ps.Addf("buffer_bytes", "must be at least 64KiB")
	}
	if c.MaxPayload < 16 || c.MaxPayload > notify.MaxData {
		ps.Addf("max_payload", "must be 16B to 64KiB")
	}
	if c.MaxDevices < 1 || c.MaxDevices > notify.MaxTargets {
		ps.Addf("max_devices", "must be 1 to %d", notify.MaxTargets)
	}
	if c.ReportTimeout < 100*time.Millisecond {
		ps.Addf("report_timeout", "must be at least 100ms")
	}
	return ps.Err()
}

func (c NotifyConfig) buffer() notify.BufferConfig {
	return notify.BufferConfig{TTL: c.BufferTTL, PerDevice: c.PerDevice, Broadcasts: c.Broadcasts, MaxBytes: int64(c.BufferBytes)}
}

// notifier serves the notify API, keeps the buffer, sends notices to every
// gateway instance and gathers their reports.
type notifier struct {
	cfg       NotifyConfig
	name      string
	instances int
	buf       *notify.Buffer
	token     []byte
	log       *slog.Logger
	now       func() time.Time
	client    *tunnel.Client

	// sendMu numbers events and sends them in one order to every instance, so
	// each instance sees this connector's events in sequence order.
	sendMu sync.Mutex
	last   uint64

	mu      sync.Mutex
	waiting map[uint64]chan instanceReport
}

type instanceReport struct {
	inst int
	r    notify.Report
}

func newNotifier(cfg Config, log *slog.Logger, now func() time.Time) (*notifier, error) {
	buf, err := notify.NewBuffer(cfg.Notify.buffer())
	if err != nil {
		return nil, err
	}
	n := &notifier{cfg: cfg.Notify, name: cfg.Name, instances: cfg.Gateway.Instances, buf: buf, log: log, now: now,
		waiting: map[uint64]chan instanceReport{}}
	if cfg.Notify.TokenFile != "" {
		b, err := os.ReadFile(cfg.Notify.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("connector: notify token: %w", err)
		}
		n.token = bytes.TrimSpace(b)
		if len(n.token) < 16 {
			return nil, errors.New("connector: notify token: the secret must be at least 16 bytes")
		}
	}
	return n, nil
}

// attach wires the notifier to the tunnel client: reports arrive as control
// messages.
func (n *notifier) attach(c *tunnel.Client) {
	n.client = c
	c.SetExtension(n.handleControl)
}

// streams serves replay requests from the gateway's request streams and passes
// every other stream to next.
func (n *notifier) streams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == notify.ReplayPath {
			n.serveReplay(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (n *notifier) handleControl(inst int, m *tunnel.Message) {
	if m.Type != tunnel.MsgReport {
		return
	}
	var r notify.Report
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		n.log.Warn("connector: bad notification report", "instance", inst, "err", err)
		return
	}
	n.mu.Lock()
	ch := n.waiting[r.Seq]
	n.mu.Unlock()
	if ch != nil {
		select {
		case ch <- instanceReport{inst: inst, r: r}:
		default:
		}
	}
}

// NotifyRequest is the body of POST /api/v1/notify: one target (device,
// devices or all), an optional event type and the data (any JSON value).
type NotifyRequest struct {
	Device  string          `json:"device,omitempty"`
	Devices []string        `json:"devices,omitempty"`
	All     bool            `json:"all,omitempty"`
	Event   string          `json:"event,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// NotifyResult is the answer of POST /api/v1/notify: the delivery report.
type NotifyResult struct {
	Connector string `json:"connector"`
	Seq       uint64 `json:"seq"`
	// Buffered: devices that reconnect with Last-Event-ID before BufferedUntil
	// get the event if they missed it.
	Buffered      bool       `json:"buffered"`
	BufferedUntil *time.Time `json:"buffered_until,omitempty"`
	// Delivered is the sum over instances.
	Delivered int `json:"delivered"`
	// NotConnected lists the named devices no instance delivered to.
	NotConnected []string         `json:"not_connected,omitempty"`
	Instances    []InstanceResult `json:"instances"`
}

// InstanceResult is one gateway instance's part.
type InstanceResult struct {
	Instance int `json:"instance"`
	// Status: reported, not_connected (no tunnel to the instance now),
	// no_report (none within report_timeout), refused (the instance refused the
	// notice; see error).
	Status       string `json:"status"`
	Delivered    int    `json:"delivered"`
	NotConnected int    `json:"not_connected"`
	Failed       int    `json:"failed"`
	Error        string `json:"error,omitempty"`
}

// maxNotifyBody bounds the API request: the device list dominates it.
const maxNotifyBody = 4 << 20

// ServeHTTP is POST /api/v1/notify.
func (n *notifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n.token != nil {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), n.token) != 1 {
			httperror.Write(w, "", httperror.New(httperror.InvalidToken, "this API needs the configured bearer token"))
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxNotifyBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var req NotifyRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httperror.Write(w, "", httperror.New(httperror.RequestTooLarge, fmt.Sprintf("the request is larger than %d bytes", maxNotifyBody)))
			return
		}
		httperror.Write(w, "", httperror.New(httperror.BadRequest, "the body is not a notify request: "+err.Error()))
		return
	}
	nt, herr := n.notice(&req)
	if herr != nil {
		httperror.Write(w, "", herr)
		return
	}
	res := n.send(r.Context(), nt)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

// notice checks a request and builds its notice (without a sequence number).
func (n *notifier) notice(req *NotifyRequest) (*notify.Notice, *httperror.Error) {
	targets := 0
	if req.Device != "" {
		targets++
	}
	if len(req.Devices) > 0 {
		targets++
	}
	if req.All {
		targets++
	}
	if targets != 1 {
		return nil, httperror.New(httperror.BadRequest, `name exactly one target: "device", "devices" or "all": true`)
	}
	nt := &notify.Notice{All: req.All, Event: req.Event}
	if req.Device != "" {
		nt.Devices = []string{req.Device}
	} else if len(req.Devices) > 0 {
		seen := make(map[string]bool, len(req.Devices))
		for _, d := range req.Devices {
			if !seen[d] {
				seen[d] = true
				nt.Devices = append(nt.Devices, d)
			}
		}
		if len(nt.Devices) > n.cfg.MaxDevices {
			return nil, httperror.New(httperror.RequestTooLarge, fmt.Sprintf("at most %d devices per request", n.cfg.MaxDevices))
		}
	}
	for _, d := range nt.Devices {
		if err := notify.ValidDevice(d); err != nil {
			return nil, httperror.New(httperror.BadRequest, err.Error())
		}
	}
	if err := notify.ValidEventName(req.Event); err != nil {
		return nil, httperror.New(httperror.BadRequest, err.Error())
	}
	if len(req.Data) == 0 {
		return nil, httperror.New(httperror.BadRequest, `"data" is required (any JSON value)`)
	}
	data, err := notify.CompactData(req.Data)
	if err != nil && len(req.Data) <= notify.MaxData {
		return nil, httperror.New(httperror.BadRequest, err.Error())
	}
	if err != nil || int64(len(data)) > int64(n.cfg.MaxPayload) {
		return nil, httperror.New(httperror.RequestTooLarge, fmt.Sprintf("the data is larger than %d bytes", n.cfg.MaxPayload))
	}
	nt.Data = data
	return nt, nil
}

// send numbers, buffers and sends the notice to every instance, then gathers
// the reports.
func (n *notifier) send(ctx context.Context, nt *notify.Notice) *NotifyResult {
	reports := make(chan instanceReport, n.instances)
	res := &NotifyResult{Connector: n.name}
	sent := make([]bool, n.instances)
	results := make([]InstanceResult, n.instances)

	n.sendMu.Lock()
	now := n.now()
	nt.Seq = max(n.last+1, uint64(now.UnixNano()))
	n.last = nt.Seq
	res.Seq = nt.Seq
	n.mu.Lock()
	n.waiting[nt.Seq] = reports
	n.mu.Unlock()
	if until, ok := n.buf.Add(now, notify.Event{Seq: nt.Seq, Event: nt.Event, Data: nt.Data}, nt.All, nt.Devices); ok {
		res.Buffered, res.BufferedUntil = true, &until
	}
	payload, err := json.Marshal(nt)
	for i := range n.instances {
		results[i] = InstanceResult{Instance: i, Status: "not_connected"}
		if err != nil {
			break
		}
		if serr := n.client.SendTo(i, &tunnel.Message{Type: tunnel.MsgNotify, Payload: payload}); serr != nil {
			results[i].Error = serr.Error()
			continue
		}
		sent[i] = true
	}
	n.sendMu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiting, nt.Seq)
		n.mu.Unlock()
	}()

	expect := 0
	for _, s := range sent {
		if s {
			expect++
		}
	}
	got := make([]*notify.Report, n.instances)
	t := time.NewTimer(n.cfg.ReportTimeout)
	defer t.Stop()
wait:
	for expect > 0 {
		select {
		case ir := <-reports:
			if ir.inst >= 0 && ir.inst < n.instances && sent[ir.inst] && got[ir.inst] == nil {
				got[ir.inst] = &ir.r
				expect--
			}
		case <-t.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	delivered := make([]bool, len(nt.Devices))
	for i := range results {
		switch {
		case !sent[i]:
		case got[i] == nil:
			results[i].Status = "no_report"
			results[i].Error = fmt.Sprintf("no report within %v", n.cfg.ReportTimeout)
		case got[i].Error != "":
			results[i].Status = "refused"
			results[i].Error = got[i].Error
		default:
			r := got[i]
			results[i].Status = "reported"
			results[i].Delivered, results[i].NotConnected, results[i].Failed = r.Delivered, r.NotConnected, r.Failed
			res.Delivered += r.Delivered
			for _, idx := range r.DeliveredIdx {
				if idx >= 0 && idx < len(delivered) {
					delivered[idx] = true
				}
			}
		}
	}
	for i, d := range nt.Devices {
		if !delivered[i] {
			res.NotConnected = append(res.NotConnected, d)
		}
	}
	res.Instances = results
	return res
}

// serveReplay answers a gateway instance's replay request (on a request
// stream): what the named devices missed, still in the buffer.
func (n *notifier) serveReplay(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httperror.Write(w, r.Header.Get("Cmg-Request-Id"), httperror.New(httperror.MethodNotAllowed, "replay takes POST"))
		return
	}
	var req notify.ReplayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Validate() != nil {
		httperror.Write(w, r.Header.Get("Cmg-Request-Id"), httperror.New(httperror.BadRequest, "not a replay request"))
		return
	}
	resp := n.buf.Replay(n.now(), &req)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// bufferStats is the buffer's size for the status API.
func (n *notifier) bufferStats() notify.Stats { return n.buf.Stats() }
