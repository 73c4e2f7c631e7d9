package main

import (
	"io"
	"log/slog"

	"github.com/cmg-gateway/cmg/logging"
)

// newLogger returns a JSON slog logger at the named level, with warnings and
// errors rate-limited per message.
func newLogger(w io.Writer, level string) *slog.Logger { return logging.New(w, level) }
