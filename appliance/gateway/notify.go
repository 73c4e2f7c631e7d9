package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tunnel"
)

// The notification channel on a gateway instance (DESIGN section 9).
//
// Memory per idle channel decides how many devices one instance holds, so an
// open channel has no goroutine and no buffer of its own: once the SSE header is
// written the connection is hijacked from net/http and parked in a small struct
// (channel). A fixed pool of writer goroutines writes events and heartbeats; a
// timer wheel driven by one goroutine spreads heartbeats over the interval and,
// at each, peeks at the socket (MSG_PEEK, non-blocking) to notice devices that
// left. Measured (README, "Notification channel"): a parked TLS channel costs
// about a third of what net/http's goroutine-per-connection server costs.
//
// Nothing a connector sends is lost to a channel while the connector's tunnel
// to this instance is down: when a connector (re)joins, the instance first asks
// it for what every channel of its site missed (a batched replay from each
// channel's cursor) and holds the connector's new notices until that is queued.

// notifyShards spreads the device map over locks.
const notifyShards = 64

// wheelSlots is the heartbeat timer wheel's size: a channel's heartbeat comes in
// one of this many ticks per interval.
const wheelSlots = 64

// reportWait bounds how long an instance waits for a notification's writes
// before it reports (writes still pending count as pending).
const reportWait = 2 * time.Second

// notifier holds the channels open on this instance and writes to them.
type notifier struct {
	g    *Gateway
	cfg  NotifyConfig
	log  *slog.Logger
	now  func() time.Time
	m    *notifyMetrics
	seed maphash.Seed

	shards [notifyShards]channelShard

	// The run queue: channels with something to write, each at most once.
	qmu     sync.Mutex
	qcond   *sync.Cond
	runq    []*channel
	qhead   int
	stopped bool

	// The heartbeat wheel: intrusive lists of channels, one per slot.
	wmu   sync.Mutex
	slots [wheelSlots]*channel
	tick  int
	due   []*channel // the ticker goroutine's scratch

	// Connector sessions seen, each caught up once when it joins.
	smu  sync.Mutex
	sess map[*tunnel.Session]*sessState
}

// sessState is a connector session's catch-up: while it runs, the session's
// notices wait (in order) in parked.
type sessState struct {
	catching bool
	parked   []*notify.Notice
}

// maxParked bounds the notices one connector may send during its catch-up.
const maxParked = 4096

type channelShard struct {
	mu sync.Mutex
	m  map[string]*channel // by device
}

// channel is one open notification channel, parked.
type channel struct {
	conn   net.Conn // the device's TLS connection: writes
	raw    net.Conn // the connection under TLS: liveness, close
	device string
	site   string
	opened int64 // Unix nanoseconds

	mu     sync.Mutex
	state  uint8
	queue  []queued
	replay []replayed

	// cur is the device's cursor, under mu (set before registration).
	cur notify.Cursor

	// Wheel links, under notifier.wmu; slot is -1 when unlinked.
	wprev, wnext *channel
	slot         int16
}

// channel states.
const (
	chScheduled = 1 << iota // in the run queue or being written by a writer
	chHolding               // resuming: live events wait for the replay
	chClosed
	chHeartbeat // a heartbeat is due
)

// queued is one live event waiting for a channel.
type queued struct {
	d   *delivery
	idx int32 // position in the notice's device list, -1 for all
}

// replayed is one missed event fetched from a connector.
type replayed struct {
	connector string
	ev        notify.Event
}

// delivery is one notice being written to the channels it targets.
type delivery struct {
	sess      *tunnel.Session
	connector string
	seq       uint64
	body      []byte // the event's fields after its id line
	arrived   time.Time
	list      bool

	notConnected int
	pending      atomic.Int64
	delivered    atomic.Int64
	failed       atomic.Int64
	mu           sync.Mutex
	idx          []int
	done         chan struct{}
}

func (d *delivery) finish(idx int32, ok bool) {
	if ok {
		d.delivered.Add(1)
		if d.list {
			d.mu.Lock()
			d.idx = append(d.idx, int(idx))
			d.mu.Unlock()
		}
	} else {
		d.failed.Add(1)
	}
	d.release()
}

func (d *delivery) release() {
	if d.pending.Add(-1) == 0 {
		close(d.done)
	}
}

// Why channels close (for the debug log).
const (
	closeGone     = "device went away"
	closeWrite    = "write failed"
	closeBehind   = "device too far behind"
	closeReplaced = "replaced by a newer channel of the device"
	closeStopping = "instance stopping"
)

func newNotifier(g *Gateway) (*notifier, error) {
	m, err := newNotifyMetrics(g.prom)
	if err != nil {
		return nil, err
	}
	n := &notifier{g: g, cfg: g.cfg.Notify, log: g.log, now: g.now, m: m, seed: maphash.MakeSeed(),
		sess: map[*tunnel.Session]*sessState{}}
	n.qcond = sync.NewCond(&n.qmu)
	for i := range n.shards {
		n.shards[i].m = map[string]*channel{}
	}
	g.tun.SetExtension(n.handleControl)
	g.reg.OnChange(n.sessionsChanged)
	return n, nil
}

// Run starts the writers and the heartbeat wheel; when ctx ends it closes every
// channel (the devices reconnect elsewhere) and returns.
func (n *notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range n.cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.writer()
		}()
	}
	t := time.NewTicker(max(n.cfg.Heartbeat/wheelSlots, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			n.stop()
			wg.Wait()
			return nil
		case <-t.C:
			n.onTick()
		}
	}
}

// Open is the number of open channels.
func (n *notifier) Open() int {
	total := 0
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.Lock()
		total += len(sh.m)
		sh.mu.Unlock()
	}
	return total
}

func (n *notifier) shard(device string) *channelShard {
	return &n.shards[maphash.String(n.seed, device)%notifyShards]
}

// register makes ch the device's channel, closing the one it replaces. It
// returns false when the instance is stopping.
func (n *notifier) register(ch *channel) bool {
	if n.isStopped() {
		return false
	}
	// On the wheel before it can be found (and closed, which unlinks it).
	n.link(ch)
	n.m.channels.Inc()
	n.g.m.conns.Inc() // net/http stopped counting it at the hijack
	sh := n.shard(ch.device)
	sh.mu.Lock()
	old := sh.m[ch.device]
	sh.m[ch.device] = ch
	sh.mu.Unlock()
	if old != nil {
		n.closeChannel(old, closeReplaced)
	}
	if n.isStopped() {
		// stop may have swept the shards before ch was in them.
		n.closeChannel(ch, closeStopping)
		return false
	}
	return true
}

func (n *notifier) isStopped() bool {
	n.qmu.Lock()
	defer n.qmu.Unlock()
	return n.stopped
}

// closeChannel closes ch once: pending events fail, the socket closes (no TLS
// close_notify: it could block on a device that stopped reading).
func (n *notifier) closeChannel(ch *channel, why string) {
	ch.mu.Lock()
	if ch.state&chClosed != 0 {
		ch.mu.Unlock()
		return
	}
	ch.state |= chClosed
	items := ch.queue
	ch.queue, ch.replay = nil, nil
	ch.mu.Unlock()
	for _, it := range items {
		it.d.finish(it.idx, false)
	}
	n.m.results[notifyFailed].Add(float64(len(items)))
	sh := n.shard(ch.device)
	sh.mu.Lock()
	if sh.m[ch.device] == ch {
		delete(sh.m, ch.device)
	}
	sh.mu.Unlock()
	n.unlink(ch)
	_ = ch.raw.Close()
	n.m.channels.Dec()
	n.g.m.conns.Dec()
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		n.log.Debug("notification channel closed", "device", n.g.deviceHash(ch.device), "site", ch.site,
			"reason", why, "open_s", n.now().Sub(time.Unix(0, ch.opened)).Seconds())
	}
}

// stop closes every channel and the writers.
func (n *notifier) stop() {
	n.qmu.Lock()
	n.stopped = true
	n.qcond.Broadcast()
	n.qmu.Unlock()
	var all []*channel
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.Lock()
		for _, ch := range sh.m {
			all = append(all, ch)
		}
		sh.mu.Unlock()
	}
	for _, ch := range all {
		n.closeChannel(ch, closeStopping)
	}
}

// handleControl takes the control messages of the notification channel from a
// connector (the tunnel's extension hook). It runs on the session's control
// reader, so notices from one connector are handled in their order.
func (n *notifier) handleControl(sess *tunnel.Session, m *tunnel.Message) {
	if m.Type != tunnel.MsgNotify {
		return
	}
	var nt notify.Notice
	err := json.Unmarshal(m.Payload, &nt)
	if err == nil {
		err = nt.Validate()
	}
	if err == nil && n.isStopped() {
		err = errStopping
	}
	if err == nil {
		n.smu.Lock()
		st := n.stateOf(sess)
		if st.catching {
			if len(st.parked) < maxParked {
				st.parked = append(st.parked, &nt)
				n.smu.Unlock()
				return
			}
			err = errors.New("too many notifications while catching up with the connector")
		}
		n.smu.Unlock()
	}
	if err != nil {
		n.log.Warn("notification refused", "connector", sess.Name, "site", sess.Site, "seq", nt.Seq, "err", err)
		n.sendReport(sess, &notify.Report{Seq: nt.Seq, Error: err.Error()})
		return
	}
	d := n.deliver(sess, &nt)
	go n.report(d)
}

// stateOf returns the session's state, starting its catch-up when it is new.
// n.smu is held.
func (n *notifier) stateOf(sess *tunnel.Session) *sessState {
	st := n.sess[sess]
	if st == nil {
		st = &sessState{catching: true}
		n.sess[sess] = st
		go n.catchUp(sess, st)
	}
	return st
}

// sessionsChanged runs on every registry change: new sessions start their
// catch-up, ended ones are forgotten.
func (n *notifier) sessionsChanged() {
	live := n.g.reg.Sessions()
	n.smu.Lock()
	defer n.smu.Unlock()
	for _, s := range live {
		n.stateOf(s)
	}
	for s := range n.sess {
		select {
		case <-s.Done():
			delete(n.sess, s)
		default:
		}
	}
}

var (
	errStopping = errors.New("the gateway instance is stopping")
	errGone     = errors.New("the device went away")
)

// deliver queues the notice on every targeted channel of the connector's site.
// A connector reaches the devices of its own site only.
func (n *notifier) deliver(sess *tunnel.Session, nt *notify.Notice) *delivery {
	d := &delivery{
		sess:      sess,
		connector: sess.Name,
		seq:       nt.Seq,
		body:      notify.AppendBody(nil, nt.Event, nt.Data),
		arrived:   n.now(),
		list:      !nt.All,
		done:      make(chan struct{}),
	}
	d.pending.Store(1)
	var sched, behind []*channel
	site := sess.Site
	if nt.All {
		for i := range n.shards {
			sh := &n.shards[i]
			sh.mu.Lock()
			for _, ch := range sh.m {
				if ch.site == site {
					sched, behind = n.enqueue(ch, d, -1, sched, behind)
				}
			}
			sh.mu.Unlock()
		}
	} else {
		for i, dev := range nt.Devices {
			sh := n.shard(dev)
			sh.mu.Lock()
			ch := sh.m[dev]
			if ch != nil && ch.site == site {
				sched, behind = n.enqueue(ch, d, int32(i), sched, behind)
			} else {
				d.notConnected++
			}
			sh.mu.Unlock()
		}
		n.m.results[notifyNotConnected].Add(float64(d.notConnected))
	}
	n.pushAll(sched)
	for _, ch := range behind {
		n.closeChannel(ch, closeBehind)
	}
	d.release()
	return d
}

// enqueue adds one event to ch's queue and schedules it. A channel whose queue
// is full goes to behind (cut after the shard lock is released).
func (n *notifier) enqueue(ch *channel, d *delivery, idx int32, sched, behind []*channel) ([]*channel, []*channel) {
	ch.mu.Lock()
	if ch.state&chClosed != 0 {
		ch.mu.Unlock()
		d.failed.Add(1)
		n.m.results[notifyFailed].Inc()
		return sched, behind
	}
	if len(ch.queue) >= n.cfg.QueueLimit {
		ch.mu.Unlock()
		d.failed.Add(1)
		n.m.results[notifyDropped].Inc()
		return sched, append(behind, ch)
	}
	d.pending.Add(1)
	ch.queue = append(ch.queue, queued{d: d, idx: idx})
	if ch.state&(chScheduled|chHolding) == 0 {
		ch.state |= chScheduled
		sched = append(sched, ch)
	}
	ch.mu.Unlock()
	return sched, behind
}

// report answers the connector once the notice's writes are done (or after
// reportWait, counting the rest as pending).
func (n *notifier) report(d *delivery) {
	t := time.NewTimer(reportWait)
	defer t.Stop()
	select {
	case <-d.done:
	case <-t.C:
	}
	r := &notify.Report{
		Seq:          d.seq,
		Delivered:    int(d.delivered.Load()),
		NotConnected: d.notConnected,
		Failed:       int(d.failed.Load()),
	}
	if d.list {
		d.mu.Lock()
		r.DeliveredIdx = slices.Clone(d.idx)
		d.mu.Unlock()
		slices.Sort(r.DeliveredIdx)
	}
	n.sendReport(d.sess, r)
}

func (n *notifier) sendReport(sess *tunnel.Session, r *notify.Report) {
	payload, err := json.Marshal(r)
	if err != nil {
		return
	}
	if err := sess.Send(&tunnel.Message{Type: tunnel.MsgReport, Payload: payload}); err != nil {
		n.log.Debug("notification report not sent", "connector", sess.Name, "seq", r.Seq, "err", err)
	}
}

// pushAll adds scheduled channels to the run queue.
func (n *notifier) pushAll(chs []*channel) {
	if len(chs) == 0 {
		return
	}
	n.qmu.Lock()
	n.runq = append(n.runq, chs...)
	n.qmu.Unlock()
	if len(chs) == 1 {
		n.qcond.Signal()
	} else {
		n.qcond.Broadcast()
	}
}

// pop takes the next channel to write, or nil when the notifier stops.
func (n *notifier) pop() *channel {
	n.qmu.Lock()
	defer n.qmu.Unlock()
	for n.qhead == len(n.runq) && !n.stopped {
		n.qcond.Wait()
	}
	if n.stopped {
		return nil
	}
	ch := n.runq[n.qhead]
	n.runq[n.qhead] = nil
	n.qhead++
	if n.qhead == len(n.runq) {
		n.runq, n.qhead = n.runq[:0], 0
	}
	return ch
}

// writer writes channels from the run queue until the notifier stops.
func (n *notifier) writer() {
	var buf []byte
	for {
		ch := n.pop()
		if ch == nil {
			return
		}
		buf = n.write(ch, buf[:0])
		if cap(buf) > 64<<10 {
			buf = nil
		}
	}
}

// write sends what ch has waiting in one write: replayed events, live events,
// or a heartbeat when there is nothing else.
func (n *notifier) write(ch *channel, buf []byte) []byte {
	ch.mu.Lock()
	if ch.state&(chClosed|chHolding) != 0 {
		ch.state &^= chScheduled
		ch.mu.Unlock()
		return buf
	}
	items, replay := ch.queue, ch.replay
	ch.queue, ch.replay = nil, nil
	heartbeat := ch.state&chHeartbeat != 0
	ch.state &^= chHeartbeat
	replays := 0
	if replay != nil {
		buf, replays = n.appendReplay(ch, buf, replay, items)
	} else {
		for _, it := range items {
			if ch.cur.Advance(it.d.connector, it.d.seq) {
				buf = notify.AppendID(buf, &ch.cur)
				buf = append(buf, it.d.body...)
			}
		}
	}
	ch.mu.Unlock()
	if len(buf) == 0 && heartbeat {
		buf = append(buf, notify.Heartbeat...)
	}
	var err error
	if gone, _ := peerGone(ch.raw); gone {
		// A write to a socket the device closed still succeeds once; the
		// report must not count it as delivered.
		err = errGone
	} else if len(buf) > 0 {
		_ = ch.conn.SetWriteDeadline(n.now().Add(n.cfg.WriteTimeout))
		_, err = ch.conn.Write(buf)
		n.g.m.egress[peerClient][noRole].Add(float64(len(buf)))
	}
	now := n.now()
	for _, it := range items {
		it.d.finish(it.idx, err == nil)
		if err == nil {
			n.m.delivery.Observe(now.Sub(it.d.arrived).Seconds())
		}
	}
	if err != nil {
		n.m.results[notifyFailed].Add(float64(len(items)))
		why := closeWrite
		if err == errGone {
			why = closeGone
		}
		n.closeChannel(ch, why)
		return buf
	}
	n.m.results[notifyDelivered].Add(float64(len(items)))
	n.m.results[notifyReplayed].Add(float64(replays))

	clear(items)
	ch.mu.Lock()
	more := ch.state&(chClosed|chHolding) == 0 && (len(ch.queue) > 0 || ch.replay != nil || ch.state&chHeartbeat != 0)
	if !more {
		ch.state &^= chScheduled
	}
	if ch.queue == nil && cap(items) <= 4 {
		ch.queue = items[:0]
	}
	ch.mu.Unlock()
	if more {
		n.pushAll([]*channel{ch})
	}
	return buf
}

// appendReplay writes replayed events and the live ones waiting with them, in
// sequence order, each once. ch.mu is held.
func (n *notifier) appendReplay(ch *channel, buf []byte, replay []replayed, items []queued) ([]byte, int) {
	type out struct {
		connector string
		seq       uint64
		ev        *notify.Event
		body      []byte
	}
	all := make([]out, 0, len(replay)+len(items))
	for i := range replay {
		all = append(all, out{connector: replay[i].connector, seq: replay[i].ev.Seq, ev: &replay[i].ev})
	}
	for _, it := range items {
		all = append(all, out{connector: it.d.connector, seq: it.d.seq, body: it.d.body})
	}
	slices.SortStableFunc(all, func(a, b out) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	replays := 0
	for _, o := range all {
		if !ch.cur.Advance(o.connector, o.seq) {
			continue
		}
		buf = notify.AppendID(buf, &ch.cur)
		if o.ev != nil {
			buf = notify.AppendBody(buf, o.ev.Event, o.ev.Data)
			replays++
		} else {
			buf = append(buf, o.body...)
		}
	}
	return buf, replays
}

// release ends a channel's hold after its replay.
func (n *notifier) release(ch *channel, replay []replayed) {
	n.addReplay(ch, replay, true)
}

// addReplay queues replayed events on ch (merged with what waits by the
// writer); release also ends the channel's hold.
func (n *notifier) addReplay(ch *channel, replay []replayed, release bool) {
	ch.mu.Lock()
	if ch.state&chClosed != 0 {
		ch.mu.Unlock()
		return
	}
	if release {
		ch.state &^= chHolding
	}
	ch.replay = append(ch.replay, replay...)
	sched := ch.state&(chScheduled|chHolding) == 0 && (len(ch.queue) > 0 || ch.replay != nil || ch.state&chHeartbeat != 0)
	if sched {
		ch.state |= chScheduled
	}
	ch.mu.Unlock()
	if sched {
		n.pushAll([]*channel{ch})
	}
}

// link puts ch on the wheel a full interval ahead.
func (n *notifier) link(ch *channel) {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	s := (n.tick + wheelSlots - 1) % wheelSlots
	ch.slot = int16(s)
	ch.wprev = nil
	ch.wnext = n.slots[s]
	if ch.wnext != nil {
		ch.wnext.wprev = ch
	}
	n.slots[s] = ch
}

func (n *notifier) unlink(ch *channel) {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if ch.slot < 0 {
		return
	}
	if ch.wprev != nil {
		ch.wprev.wnext = ch.wnext
	} else {
		n.slots[ch.slot] = ch.wnext
	}
	if ch.wnext != nil {
		ch.wnext.wprev = ch.wprev
	}
	ch.wprev, ch.wnext, ch.slot = nil, nil, -1
}

// onTick advances the wheel: every channel of the slot is checked for a device
// that went away and gets a heartbeat.
func (n *notifier) onTick() {
	n.wmu.Lock()
	n.tick = (n.tick + 1) % wheelSlots
	due := n.due[:0]
	for ch := n.slots[n.tick]; ch != nil; ch = ch.wnext {
		due = append(due, ch)
	}
	n.wmu.Unlock()
	var sched []*channel
	for _, ch := range due {
		if gone, _ := peerGone(ch.raw); gone {
			n.closeChannel(ch, closeGone)
			continue
		}
		ch.mu.Lock()
		if ch.state&chClosed == 0 {
			ch.state |= chHeartbeat
			if ch.state&(chScheduled|chHolding) == 0 {
				ch.state |= chScheduled
				sched = append(sched, ch)
			}
		}
		ch.mu.Unlock()
	}
	n.pushAll(sched)
	clear(due)
	n.due = due[:0]
}
