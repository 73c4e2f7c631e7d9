package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/metrics/cost"
	"github.com/cmg-gateway/cmg/profiling"
	"github.com/cmg-gateway/cmg/tracing"
)

// observability is what the gateway measures beyond its request metrics: the
// wire counters, the cost model, tracing and the keyed hash of device identities
// in its logs.
type observability struct {
	wire   *wireCounters
	cost   *cost.Meter
	tracer *tracing.Tracer
	// tr is the tracer spans start with; nil when tracing is off, which the
	// request path tests before doing anything for traces.
	tr trace.Tracer
	// hashers compute the access log's device hash (HMAC-SHA-256 under the
	// log key, first 8 bytes in hex).
	hashers sync.Pool
	// keyEphemeral is set when no key file is configured: hashes change at
	// every start.
	keyEphemeral bool
}

// logKeyLabel derives the access log's key from the device-hash key, so a log
// line's hash never equals what the distinct-device sketches hold.
const logKeyLabel = "cmg access-log device hash v1"

// newObservability builds the wire counters, the cost model (cmg_cost_* and
// cmg_gateway_clients_active), the tracer and the device-hash key.
func (g *Gateway) newObservability(opts Options) error {
	o := &g.obs
	costNow := opts.CostNow
	if costNow == nil {
		costNow = g.now
	}
	var err error
	if o.cost, err = cost.New(g.cfg.Cost, cost.Options{Now: costNow, Logger: g.log}); err != nil {
		return fmt.Errorf("gateway: cost: %w", err)
	}
	if _, err := cost.NewCollector(g.prom, o.cost); err != nil {
		return fmt.Errorf("gateway: cost metrics: %w", err)
	}
	if o.wire, err = newWireCounters(g.prom, o.cost.AddEgress); err != nil {
		return fmt.Errorf("gateway: wire metrics: %w", err)
	}
	o.tracer, err = tracing.New(context.Background(), g.cfg.Tracing, tracing.Options{
		Service: "cmg-gateway", Instance: strconv.Itoa(g.cfg.Instance),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if o.tracer != nil {
		o.tr = o.tracer.Tracer()
	}
	key, ephemeral, err := deviceHashKey(g.cfg)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(logKeyLabel))
	logKey := mac.Sum(nil)
	o.hashers.New = func() any { return hmac.New(sha256.New, logKey) }
	o.keyEphemeral = ephemeral
	return nil
}

// deviceHashKey reads the key of the device hash: log.device_hash_key_file, else
// the cost model's key file (cost.key_file, or cost.state_file + ".key"), each
// created when missing; with neither, a random key for this run only.
func deviceHashKey(cfg Config) (key []byte, ephemeral bool, err error) {
	path := cfg.Log.DeviceHashKeyFile
	if path == "" {
		path = cfg.Cost.KeyFile
	}
	if path == "" && cfg.Cost.StateFile != "" {
		path = cfg.Cost.StateFile + ".key"
	}
	if path == "" {
		key = make([]byte, 32)
		_, err = rand.Read(key)
		return key, true, err
	}
	key, err = cost.LoadOrCreateKey(path)
	if err != nil {
		return nil, false, fmt.Errorf("gateway: device hash key: %w", err)
	}
	return key, false, nil
}

// hashDevice is the keyed hash of a device identity that logs carry.
func (o *observability) hashDevice(device string) string {
	h := o.hashers.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(device))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	o.hashers.Put(h)
	return hex.EncodeToString(sum[:8])
}

// runObservability labels the instance's goroutines for profiles and runs the
// cost model until ctx is done. The returned stop waits for the cost model to
// save its state and flushes buffered spans; call it after the listeners
// stopped.
func (g *Gateway) runObservability(ctx context.Context) (stop func()) {
	profiling.Labels(ctx, profiling.Tags{Instance: strconv.Itoa(g.cfg.Instance), Role: "gateway"})
	if g.obs.keyEphemeral {
		g.log.Warn("gateway: no device hash key file (log.device_hash_key_file or cost.key_file); device hashes in the logs change at every start")
	}
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.obs.cost.Run(cctx)
	}()
	return func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := g.obs.tracer.Shutdown(sctx); err != nil {
			g.log.Warn("gateway: flushing spans", "err", err)
		}
	}
}

// observeDevice counts an authenticated device for the distinct-device windows.
func (g *Gateway) observeDevice(device string) {
	if device != "" {
		g.obs.cost.ObserveDevice(device)
	}
}

// reloadObservability applies what a reload may change: the prices.
func (g *Gateway) reloadObservability(cfg Config) {
	if err := g.obs.cost.SetPrices(cfg.Cost.Prices); err != nil {
		g.log.Error("gateway: cost prices reload failed; keeping the old ones", "err", err)
	}
}
