// Package tracing is cmg's OpenTelemetry tracing: the `tracing` section of the
// gateway and connector configurations, a tracer provider exporting over OTLP
// (gRPC or HTTP) when an endpoint is configured, and the W3C trace context the
// gateway writes into each tunnelled request (DESIGN section 11).
//
// One request makes one trace of four spans:
//
//	gateway      (server, the device's request at the gateway; the root)
//	└ tunnel stream   (client, one attempt on one connector's tunnel)
//	  └ connector     (server, the stream served by the connector)
//	    └ role        (client, the request to the management point or SUP)
//
// Tracing is off when no endpoint is configured: New returns a nil *Tracer, and
// callers test for nil before doing anything, so a gateway without tracing
// allocates no span, context or header for it. The provider is never installed
// as the process-wide global: each gateway or connector holds its own.
package tracing

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/version"
)

// Protocols of Config.Protocol.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Config is the `tracing` section of both configurations.
//
//	tracing:
//	  endpoint: https://otel-collector.example:4317   # empty: tracing off
//	  protocol: grpc            # or http (OTLP/HTTP protobuf, path /v1/traces unless the URL has one)
//	  sample_ratio: 0.01        # share of new traces kept; a connector follows the gateway's decision
//	  ca_files: [/etc/cmg/otel-ca.pem]   # roots for an https endpoint; empty: system roots
//	  export_timeout: 10s
type Config struct {
	// Endpoint is the OTLP receiver's URL: http://host:port (plaintext) or
	// https://host:port (TLS). Empty turns tracing off.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http.
	Protocol string `yaml:"protocol"`
	// SampleRatio is the share of traces the gateway starts that are recorded
	// and exported, 0 to 1. A connector records what the gateway sampled (the
	// flag in the trace context) and applies the ratio only to requests that
	// come without one.
	SampleRatio float64 `yaml:"sample_ratio"`
	// CAFiles verify an https endpoint's certificate; empty means the system
	// roots.
	CAFiles []string `yaml:"ca_files,omitempty"`
	// ExportTimeout bounds one export.
	ExportTimeout time.Duration `yaml:"export_timeout"`
}

// DefaultConfig is tracing off, with a 1 % sampling ratio once an endpoint is
// set.
func DefaultConfig() Config {
	return Config{Protocol: ProtocolGRPC, SampleRatio: 0.01, ExportTimeout: 10 * time.Second}
}

// Enabled reports whether an endpoint is configured.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			ps.Addf("endpoint", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			ps.Addf("endpoint", "%q must be an http:// or https:// URL", c.Endpoint)
		case u.Host == "":
			ps.Addf("endpoint", "%q has no host", c.Endpoint)
		}
	}
	switch c.Protocol {
	case ProtocolGRPC, ProtocolHTTP:
	default:
		ps.Addf("protocol", "must be grpc or http, not %q", c.Protocol)
	}
	if !(c.SampleRatio >= 0 && c.SampleRatio <= 1) {
		ps.Addf("sample_ratio", "must be 0 to 1, not %v", c.SampleRatio)
	}
	if c.ExportTimeout <= 0 {
		ps.Addf("export_timeout", "must be positive")
	}
	return ps.Err()
}

// Options name the process in its traces.
type Options struct {
	// Service is the service.name resource attribute: "cmg-gateway" or
	// "cmg-connector".
	Service string
	// Instance is service.instance.id: the gateway's instance index or the
	// connector's site/name.
	Instance string
}

// Tracer is a tracer provider with its OTLP exporter. A nil *Tracer is tracing
// off; its methods are safe to call and do nothing.
type Tracer struct {
	tp *sdktrace.TracerProvider
	tr trace.Tracer
}

// New checks cfg and builds the exporter and provider; it returns nil, nil when
// tracing is off. The exporter connects lazily, so an unreachable collector does
// not stop the process (spans are dropped and the SDK reports export errors
// through the OpenTelemetry error handler).
func New(ctx context.Context, cfg Config, opts Options) (*Tracer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", opts.Service),
		attribute.String("service.instance.id", opts.Instance),
		attribute.String("service.version", version.Version),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithExportTimeout(cfg.ExportTimeout)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracer{tp: tp, tr: tp.Tracer("github.com/cmg-gateway/cmg")}, nil
}

func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	u, _ := url.Parse(cfg.Endpoint)
	var tlsCfg *tls.Config
	if u.Scheme == "https" && len(cfg.CAFiles) > 0 {
		roots, err := auth.LoadPool(cfg.CAFiles)
		if err != nil {
			return nil, fmt.Errorf("tracing: ca_files: %w", err)
		}
		tlsCfg = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	switch cfg.Protocol {
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithTimeout(cfg.ExportTimeout)}
		if u.Path == "" || u.Path == "/" {
			opts = append(opts, otlptracehttp.WithURLPath("/v1/traces"))
		}
		if tlsCfg != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	default:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.Endpoint), otlptracegrpc.WithTimeout(cfg.ExportTimeout)}
		if tlsCfg != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/gRPC exporter: %w", err)
		}
		return exp, nil
	}
}

// Tracer is the tracer spans are started with.
func (t *Tracer) Tracer() trace.Tracer { return t.tr }

// Shutdown exports what is buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}
