package tunnel

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The fallback ladder (DESIGN section 5). The client's Transports are its rungs,
// best first: TCP-TLS, HTTPS direct, HTTPS through a proxy. Each instance
// remembers the rung that last worked and starts there when it re-dials, so a
// blocked port does not cost a timeout on every reconnect; while it is on a lower
// rung it tries the better ones every RetryPreferred and moves up as soon as one
// completes a whole handshake. The move is make-before-break: the new session is
// up before the old one is retired, and the old one finishes its streams.

// retireGrace bounds how long a replaced session may finish its requests.
const retireGrace = time.Minute

// DefaultRetryPreferred is how often a connector on a lower rung tries the
// better ones.
const DefaultRetryPreferred = time.Minute

// retire stops new streams on a session that a reconnect replaced (gateway
// side) and closes it once the requests on it are done, or after grace.
func (s *Session) retire(grace time.Duration) {
	s.markDraining()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-s.done:
			return
		case <-deadline.C:
			s.log.Warn("tunnel: a replaced session still had requests at the end of its grace; closing", "connector", s.Name, "site", s.Site)
			s.Close()
			return
		case <-t.C:
		}
	}
	s.Close()
}

// dialOrder is the order in which the rungs are tried: the last one that worked,
// those below it, then those above.
func dialOrder(n, from int) []int {
	order := make([]int, 0, n)
	for i := from; i < n; i++ {
		order = append(order, i)
	}
	for i := 0; i < from && i < n; i++ {
		order = append(order, i)
	}
	return order
}

// dialRung dials one rung of the ladder with the handshake timeout.
func (c *Client) dialRung(ctx context.Context, idx, rung int) (*clientSession, error) {
	t := c.cfg.Transports[rung]
	dctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	conn, err := t.Dial(dctx, idx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	cs, err := c.handshake(conn, c.insts[idx], t.Name())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	cs.rung = rung
	return cs, nil
}

// connect dials instance in over the ladder, starting at the rung that last
// worked, and returns the first session that completes its handshake.
func (c *Client) connect(ctx context.Context, in *instance) (*clientSession, error) {
	in.mu.Lock()
	from := in.rung
	in.mu.Unlock()
	var errs []error
	for _, r := range dialOrder(len(c.cfg.Transports), from) {
		cs, err := c.dialRung(ctx, in.idx, r)
		if err == nil {
			return cs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// tryUpgrade tries the rungs above cs's every RetryPreferred until one gives a
// session, which it sends on out (or closes when ctx ended meanwhile).
func (c *Client) tryUpgrade(ctx context.Context, in *instance, cs *clientSession, out chan<- *clientSession) {
	t := time.NewTicker(c.cfg.RetryPreferred)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cs.mux.CloseChan():
			return
		case <-t.C:
		}
		var errs []error
		for r := 0; r < cs.rung; r++ {
			ncs, err := c.dialRung(ctx, in.idx, r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			select {
			case out <- ncs:
			default:
				ncs.mux.Close()
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		msg := errors.Join(errs...).Error()
		in.mu.Lock()
		in.preferredError = msg
		in.mu.Unlock()
		c.log.Debug("tunnel: better transports still fail", "instance", in.idx, "transport", cs.transport, "err", msg)
	}
}

// retireSession ends a session that an upgrade replaced: it tells the gateway
// (which stops choosing it and answers), waits for its streams, then closes it.
func (c *Client) retireSession(cs *clientSession) {
	cs.retiring.Store(true)
	_ = cs.ctrl.write(&Message{Type: MsgDrain})
	deadline := time.NewTimer(retireGrace)
	defer deadline.Stop()
	select {
	case <-cs.drainAck:
	case <-cs.mux.CloseChan():
	case <-deadline.C:
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
wait:
	for cs.mux.NumStreams() > 1 {
		select {
		case <-cs.mux.CloseChan():
			break wait
		case <-deadline.C:
			break wait
		case <-t.C:
		}
	}
	cs.mux.Close()
	cs.srv.Close()
}
