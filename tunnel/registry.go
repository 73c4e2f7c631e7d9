package tunnel

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Registry holds the gateway's live sessions by connector and the route table
// built from what they publish. Lookups on the request path read an immutable
// snapshot without locking; changes rebuild it.
type Registry struct {
	mu       sync.Mutex
	sessions map[string]*Session // by site/name
	table    atomic.Pointer[routeTable]
	onChange []func()
}

type routeKey struct {
	auth   string
	roleID string
}

// routeSet is the connectors serving one route, in a stable order, with a
// round-robin cursor.
type routeSet struct {
	sessions []*Session
	next     atomic.Uint32
}

type routeTable map[routeKey]*routeSet

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{sessions: make(map[string]*Session)}
	empty := routeTable{}
	r.table.Store(&empty)
	return r
}

// OnChange registers f to run (outside the registry lock) after sessions or routes
// change. Register before the server starts.
func (r *Registry) OnChange(f func()) { r.onChange = append(r.onChange, f) }

// add registers s, returning the session it replaces (a reconnect under the same
// name), or nil.
func (r *Registry) add(s *Session) *Session {
	r.mu.Lock()
	old := r.sessions[s.Key()]
	r.sessions[s.Key()] = s
	r.rebuildLocked()
	r.mu.Unlock()
	r.changed()
	return old
}

// remove unregisters s if it is still the session of its connector.
func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	if r.sessions[s.Key()] == s {
		delete(r.sessions, s.Key())
		r.rebuildLocked()
	}
	r.mu.Unlock()
	r.changed()
}

// routesChanged rebuilds the table after a session's routes changed.
func (r *Registry) routesChanged() {
	r.mu.Lock()
	r.rebuildLocked()
	r.mu.Unlock()
	r.changed()
}

func (r *Registry) changed() {
	for _, f := range r.onChange {
		f()
	}
}

func (r *Registry) rebuildLocked() {
	keys := make([]string, 0, len(r.sessions))
	for k := range r.sessions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t := routeTable{}
	for _, k := range keys {
		s := r.sessions[k]
		for _, rt := range s.Routes() {
			for _, a := range rt.Auth {
				rk := routeKey{auth: a, roleID: rt.RoleID}
				set := t[rk]
				if set == nil {
					set = &routeSet{}
					t[rk] = set
				}
				set.sessions = append(set.sessions, s)
			}
		}
	}
	// Keep round-robin cursors across rebuilds so a reconnect does not reset the
	// spread.
	if old := r.table.Load(); old != nil {
		for k, set := range t {
			if o := (*old)[k]; o != nil {
				set.next.Store(o.next.Load())
			}
		}
	}
	r.table.Store(&t)
}

// Pick chooses a connector session for a request to roleID reached with the given
// auth value, round-robin over the connectors serving it: first those not
// draining that report the role healthy, then those not draining at all (role
// health orders the choice but never stops forwarding). exclude lists sessions
// already tried. It returns nil when no live connector serves the route.
func (r *Registry) Pick(auth, roleID string, exclude ...*Session) *Session {
	set := (*r.table.Load())[routeKey{auth: auth, roleID: roleID}]
	if set == nil || len(set.sessions) == 0 {
		return nil
	}
	n := uint32(len(set.sessions))
	start := set.next.Add(1) - 1
	var fallback, last *Session
	for i := uint32(0); i < n; i++ {
		s := set.sessions[(start+i)%n]
		if s.Draining() || excluded(s, exclude) || s.closed() {
			continue
		}
		if s.stalled() {
			if last == nil {
				last = s
			}
			continue
		}
		if s.Healthy(roleID) {
			return s
		}
		if fallback == nil {
			fallback = s
		}
	}
	if fallback == nil {
		return last
	}
	return fallback
}

// Serves reports whether any session (draining or not) publishes the route.
func (r *Registry) Serves(auth, roleID string) bool {
	set := (*r.table.Load())[routeKey{auth: auth, roleID: roleID}]
	return set != nil && len(set.sessions) > 0
}

// ConnectorsFor counts the live, non-draining sessions serving roleID under any
// auth.
func (r *Registry) ConnectorsFor(roleID string) int {
	seen := map[*Session]bool{}
	for k, set := range *r.table.Load() {
		if k.roleID != roleID {
			continue
		}
		for _, s := range set.sessions {
			if !s.Draining() {
				seen[s] = true
			}
		}
	}
	return len(seen)
}

// Sessions returns the live sessions sorted by site and name.
func (r *Registry) Sessions() []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func excluded(s *Session, list []*Session) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Session) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
