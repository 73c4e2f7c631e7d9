package main

import (
	"io"
	"log/slog"

	"github.com/cmg-gateway/cmg/logging"
)

// newLogger returns a JSON slog logger at the named level, with warnings and
// errors rate-limited per message and info lines batched; call flush at exit.
func newLogger(w io.Writer, level string) (*slog.Logger, func()) { return logging.New(w, level) }
