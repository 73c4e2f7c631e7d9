package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// onSIGHUP calls reload on every SIGHUP until ctx is done or stop is called.
func onSIGHUP(ctx context.Context, reload func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-ch:
				reload()
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
