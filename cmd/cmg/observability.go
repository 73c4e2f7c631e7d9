package main

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel"

	"github.com/cmg-gateway/cmg/profiling"
)

// startProfiling pushes profiles (when the section has a server URL) until ctx
// is done or stop is called; stop waits for the last push.
func startProfiling(ctx context.Context, cfg profiling.Config, tags profiling.Tags, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := profiling.Run(ctx, cfg, tags, log); err != nil {
			log.Error("profiling is off", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// otelErrorsTo sends the OpenTelemetry SDK's errors (a failed span export) to the
// process's log. The SDK reports them through its process-wide handler, so this
// is set once per process, here, and never by a library.
func otelErrorsTo(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: export failed", "err", err)
	}))
}
