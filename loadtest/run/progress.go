package run

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/device"
	"github.com/cmg-gateway/cmg/loadtest/report"
	"github.com/cmg-gateway/cmg/loadtest/schedule"
)

// startProgress draws a progress bar on w every half second until stopped.
func startProgress(w io.Writer, clock *schedule.Clock, span time.Duration, rec *report.Recorder, inflight *atomic.Int64, c *device.Counters) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(w, progressLine(1, clock, span, rec, inflight, c))
				return
			case <-t.C:
				frac := float64(clock.Elapsed()) / float64(span)
				fmt.Fprint(w, "\r"+progressLine(frac, clock, span, rec, inflight, c))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func progressLine(frac float64, clock *schedule.Clock, span time.Duration, rec *report.Recorder, inflight *atomic.Int64, c *device.Counters) string {
	frac = min(max(frac, 0), 1)
	const width = 30
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	s := rec.Snapshot()
	return fmt.Sprintf("[%s] %3.0f%%  sim %s/%s  exchanges %d  errors %d  p99 %.0f ms  in flight %d  conns %d  rx %.1f MB   ",
		bar, frac*100, shortDur(min(clock.Elapsed(), span)), shortDur(span), s.Exchanges, s.Errors,
		float64(s.P99)/float64(time.Millisecond), inflight.Load(), c.Open.Load(), float64(c.Read.Load())/1e6)
}

func shortDur(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	}
	return d.Round(time.Second).String()
}
