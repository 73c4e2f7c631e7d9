package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tunnel"
)

// fetchReplay asks every given connector for the events a resuming device
// missed and merges them in sequence order. A connector that fails costs only
// its events.
func (n *notifier) fetchReplay(ctx context.Context, sessions []*tunnel.Session, device string, cur *notify.Cursor) []replayed {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReplayTimeout)
	defer cancel()
	parts := make([][]notify.Event, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &notify.ReplayRequest{Devices: []notify.DeviceAfter{{Device: device, After: cur.After(s.Name)}}}
			resp, err := n.replayFrom(ctx, s, req)
			if err != nil {
				n.log.Warn("notification channel: replay from a connector failed", "connector", s.Name, "site", s.Site,
					"device", n.g.deviceHash(device), "err", err)
				return
			}
			parts[i] = resp.For(req, 0)
		}()
	}
	wg.Wait()
	var out []replayed
	for i, evs := range parts {
		for _, ev := range evs {
			out = append(out, replayed{connector: sessions[i].Name, ev: ev})
		}
	}
	slices.SortStableFunc(out, func(a, b replayed) int { return cmpSeq(a.ev.Seq, b.ev.Seq) })
	return out
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// catchUpParallel is how many replay batches one catch-up has in flight.
const catchUpParallel = 4

// catchUp runs when a connector session (re)joins this instance: every channel
// of its site gets what the connector holds for it after its cursor (what it
// sent while its tunnel here was down, or before the channel opened). Then the
// notices the session sent meanwhile are delivered, in order.
func (n *notifier) catchUp(sess *tunnel.Session, st *sessState) {
	start := n.now()
	chans := n.siteChannels(sess.Site)
	events := 0
	if len(chans) > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, catchUpParallel)
		for lo := 0; lo < len(chans); lo += notify.MaxReplayBatch {
			batch := chans[lo:min(lo+notify.MaxReplayBatch, len(chans))]
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				k := n.catchUpBatch(sess, batch)
				mu.Lock()
				events += k
				mu.Unlock()
			}()
		}
		wg.Wait()
		n.log.Info("notification channels caught up with a connector", "connector", sess.Name, "site", sess.Site,
			"channels", len(chans), "events", events, "duration_ms", n.now().Sub(start).Milliseconds())
	}
	for {
		n.smu.Lock()
		parked := st.parked
		st.parked = nil
		if len(parked) == 0 {
			st.catching = false
			n.smu.Unlock()
			return
		}
		n.smu.Unlock()
		for _, nt := range parked {
			d := n.deliver(sess, nt)
			go n.report(d)
		}
	}
}

// catchUpBatch replays one batch of channels; it returns the events queued.
func (n *notifier) catchUpBatch(sess *tunnel.Session, batch []*channel) int {
	req := &notify.ReplayRequest{Devices: make([]notify.DeviceAfter, len(batch))}
	for i, ch := range batch {
		ch.mu.Lock()
		req.Devices[i] = notify.DeviceAfter{Device: ch.device, After: ch.cur.After(sess.Name)}
		ch.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReplayTimeout)
	defer cancel()
	resp, err := n.replayFrom(ctx, sess, req)
	if err != nil {
		n.log.Warn("notification catch-up with a connector failed for a batch of channels", "connector", sess.Name,
			"site", sess.Site, "channels", len(batch), "err", err)
		return 0
	}
	total := 0
	for i, ch := range batch {
		evs := resp.For(req, i)
		if len(evs) == 0 {
			continue
		}
		rs := make([]replayed, len(evs))
		for j, ev := range evs {
			rs[j] = replayed{connector: sess.Name, ev: ev}
		}
		n.addReplay(ch, rs, false)
		total += len(evs)
	}
	return total
}

// siteChannels snapshots the open channels of a site.
func (n *notifier) siteChannels(site string) []*channel {
	var out []*channel
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.Lock()
		for _, ch := range sh.m {
			if ch.site == site {
				out = append(out, ch)
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// maxReplayBody bounds a connector's replay answer.
const maxReplayBody = 32 << 20

// replayFrom sends one replay request on a fresh stream of the session.
func (n *notifier) replayFrom(ctx context.Context, s *tunnel.Session, req *notify.ReplayRequest) (*notify.ReplayResponse, error) {
	st, err := s.Open()
	if err != nil {
		return nil, err
	}
	defer s.Release()
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, 160+len(body))
	msg = append(msg, "POST "+notify.ReplayPath+" HTTP/1.1\r\nHost: cmg-connector\r\nContent-Type: application/json\r\nContent-Length: "...)
	msg = strconv.AppendInt(msg, int64(len(body)), 10)
	msg = append(msg, "\r\n\r\n"...)
	msg = append(msg, body...)
	if _, err := st.Write(msg); err != nil {
		return nil, fmt.Errorf("send replay request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(st, 4096), nil)
	if err != nil {
		return nil, fmt.Errorf("read replay answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("replay answered %s (%s)", resp.Status, resp.Header.Get(httperror.Header))
	}
	var rr notify.ReplayResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReplayBody)).Decode(&rr); err != nil {
		return nil, fmt.Errorf("decode replay answer: %w", err)
	}
	if err := rr.Validate(req); err != nil {
		return nil, err
	}
	return &rr, nil
}
