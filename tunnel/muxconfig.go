package tunnel

import (
	"log/slog"
	"time"

	"github.com/hashicorp/yamux"
)

// muxConfig is the yamux configuration both ends of a tunnel share: keepalives
// on (a silent peer is found within seconds, DESIGN section 5), the write
// timeout and per-stream window of the end's configuration, a minute for a
// stream's close handshake, and yamux's own log lines at debug on the end's
// logger. openTimeout is the server's StreamOpenTimeout (0 on the client,
// which opens no streams).
func muxConfig(keepAlive, writeTimeout, openTimeout time.Duration, window uint32, log *slog.Logger) (*yamux.Config, error) {
	y := yamux.DefaultConfig()
	y.EnableKeepAlive = true
	y.KeepAliveInterval = keepAlive
	y.ConnectionWriteTimeout = writeTimeout
	y.MaxStreamWindowSize = window
	y.StreamOpenTimeout = openTimeout
	y.StreamCloseTimeout = time.Minute
	y.LogOutput = nil
	y.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if err := yamux.VerifyConfig(y); err != nil {
		return nil, err
	}
	return y, nil
}
