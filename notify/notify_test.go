package notify

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCursorTextRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Cursor
	}{
		{"base only", "1764111600000000000", Cursor{Base: 1764111600000000000}},
		{"one connector", "5;cp1=7", Cursor{Base: 5, Marks: []Mark{{"cp1", 7}}}},
		{"two connectors in name order", "5;cp1=7;cp2=9", Cursor{Base: 5, Marks: []Mark{{"cp1", 7}, {"cp2", 9}}}},
		{"zero base", "0", Cursor{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCursor(tc.text)
			if err != nil {
				t.Fatalf("ParseCursor(%q): %v", tc.text, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseCursor(%q) = %+v, want %+v", tc.text, got, tc.want)
			}
			if s := got.String(); s != tc.text {
				t.Errorf("String() = %q, want %q", s, tc.text)
			}
		})
	}
}

func TestParseCursorRefuses(t *testing.T) {
	long := "1" + strings.Repeat(";c=1", MaxMarks+1)
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"not a number", "abc"},
		{"negative base", "-5"},
		{"plus sign", "+5"},
		{"mark without seq", "5;cp1"},
		{"bad connector name", "5;c p=1"},
		{"empty connector name", "5;=1"},
		{"seq overflow", "5;cp1=99999999999999999999"},
		{"plus seq", "5;cp1=+1"},
		{"out of order", "5;cp2=1;cp1=1"},
		{"duplicate", "5;cp1=1;cp1=2"},
		{"too many marks", long},
		{"too long", strings.Repeat("1", MaxCursorLen+1)},
		{"trailing separator", "5;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := ParseCursor(tc.text); err == nil {
				t.Errorf("ParseCursor(%q) = %+v, want an error", tc.text, c)
			}
		})
	}
}

func TestCursorAdvance(t *testing.T) {
	c := Cursor{Base: 100}
	steps := []struct {
		connector string
		seq       uint64
		want      bool
		text      string
	}{
		{"cp2", 50, true, "100;cp2=50"}, // below the base: a live event is never refused for skew
		{"cp1", 200, true, "100;cp1=200;cp2=50"},
		{"cp1", 200, false, "100;cp1=200;cp2=50"}, // duplicate
		{"cp1", 150, false, "100;cp1=200;cp2=50"}, // older: a replayed event that also arrived live
		{"cp2", 300, true, "100;cp1=200;cp2=300"},
	}
	for i, s := range steps {
		if got := c.Advance(s.connector, s.seq); got != s.want {
			t.Errorf("step %d: Advance(%s, %d) = %v, want %v", i, s.connector, s.seq, got, s.want)
		}
		if got := c.String(); got != s.text {
			t.Errorf("step %d: cursor %q, want %q", i, got, s.text)
		}
	}
	if got := c.After("cp3"); got != 100 {
		t.Errorf("After(unknown) = %d, want the base 100", got)
	}
	if got := c.After("cp1"); got != 200 {
		t.Errorf("After(cp1) = %d, want 200", got)
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1", "5;cp1=7;cp2=9", "0;a=0", "5;cp1", "-1", "1;b=2;a=3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		again, err := ParseCursor(c.String())
		if err != nil {
			t.Fatalf("the text form %q of a parsed cursor does not parse: %v", c.String(), err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
		if len(c.Marks) > MaxMarks {
			t.Fatalf("%d marks exceed %d", len(c.Marks), MaxMarks)
		}
	})
}

func TestNoticeValidate(t *testing.T) {
	data := json.RawMessage(`{"a":1}`)
	tests := []struct {
		name string
		n    Notice
		ok   bool
	}{
		{"all", Notice{Seq: 1, All: true, Data: data}, true},
		{"list", Notice{Seq: 1, Devices: []string{"a", "b"}, Event: "policy.v2", Data: data}, true},
		{"no seq", Notice{All: true, Data: data}, false},
		{"both targets", Notice{Seq: 1, All: true, Devices: []string{"a"}, Data: data}, false},
		{"no target", Notice{Seq: 1, Data: data}, false},
		{"empty device", Notice{Seq: 1, Devices: []string{""}, Data: data}, false},
		{"control char device", Notice{Seq: 1, Devices: []string{"a\nb"}, Data: data}, false},
		{"bad event name", Notice{Seq: 1, All: true, Event: "a b", Data: data}, false},
		{"newline in data", Notice{Seq: 1, All: true, Data: json.RawMessage("{\n}")}, false},
		{"invalid json", Notice{Seq: 1, All: true, Data: json.RawMessage(`{`)}, false},
		{"no data", Notice{Seq: 1, All: true}, false},
		{"too many devices", Notice{Seq: 1, Devices: make([]string, MaxTargets+1), Data: data}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.n.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func FuzzNoticeDecode(f *testing.F) {
	f.Add([]byte(`{"seq":1,"all":true,"data":{"a":1}}`))
	f.Add([]byte(`{"seq":2,"devices":["a","b"],"event":"x","data":"s"}`))
	f.Add([]byte(`{"seq":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Notice
		if json.Unmarshal(b, &n) != nil || n.Validate() != nil {
			return
		}
		frame := AppendBody(nil, n.Event, n.Data)
		// A valid notice is exactly one SSE event: only its last line is blank.
		if !strings.HasSuffix(string(frame), "\n\n") || strings.Count(string(frame), "\n\n") != 1 || strings.Contains(string(frame), "\r") {
			t.Fatalf("a valid notice frames as %q", frame)
		}
	})
}

func TestSSEFraming(t *testing.T) {
	c := Cursor{Base: 1, Marks: []Mark{{"cp1", 2}}}
	got := string(AppendBody(AppendID(nil, &c), "policy", []byte(`{"a":1}`)))
	want := "id: 1;cp1=2\nevent: policy\ndata: {\"a\":1}\n\n"
	if got != want {
		t.Errorf("frame %q, want %q", got, want)
	}
	if got := string(AppendBody(nil, "", []byte(`1`))); got != "data: 1\n\n" {
		t.Errorf("frame without type %q", got)
	}
	if got := string(AppendCursorOnly(nil, &c)); got != "id: 1;cp1=2\n\n" {
		t.Errorf("cursor-only frame %q", got)
	}
}

func ev(seq uint64) Event { return Event{Seq: seq, Data: json.RawMessage(fmt.Sprint(seq))} }

func seqs(evs []Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func newTestBuffer(t *testing.T, cfg BufferConfig) *Buffer {
	t.Helper()
	b, err := NewBuffer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBufferSinceMergesOwnAndBroadcastEvents(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newTestBuffer(t, BufferConfig{TTL: time.Minute, PerDevice: 10, Broadcasts: 10, MaxBytes: 1 << 20})
	b.Add(now, ev(1), false, []string{"a"})
	b.Add(now, ev(2), true, nil)
	b.Add(now, ev(3), false, []string{"b"})
	b.Add(now, ev(4), false, []string{"a", "b"})
	b.Add(now, ev(5), true, nil)
	tests := []struct {
		device string
		after  uint64
		want   []uint64
	}{
		{"a", 0, []uint64{1, 2, 4, 5}},
		{"a", 2, []uint64{4, 5}},
		{"b", 0, []uint64{2, 3, 4, 5}},
		{"c", 0, []uint64{2, 5}},
		{"c", 5, []uint64{}},
	}
	for _, tc := range tests {
		if got := seqs(b.Since(now, tc.device, tc.after)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Since(%s, %d) = %v, want %v", tc.device, tc.after, got, tc.want)
		}
	}
}

func TestBufferReplayBatch(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newTestBuffer(t, BufferConfig{TTL: time.Minute, PerDevice: 10, Broadcasts: 10, MaxBytes: 1 << 20})
	for i := uint64(1); i <= 6; i++ {
		if i%2 == 0 {
			b.Add(now, ev(i), true, nil)
		} else {
			b.Add(now, ev(i), false, []string{"a", "b"})
		}
	}
	req := &ReplayRequest{Devices: []DeviceAfter{{"a", 3}, {"b", 1}}}
	resp := b.Replay(now, req)
	if got := seqs(resp.Broadcasts); !reflect.DeepEqual(got, []uint64{2, 4, 6}) {
		t.Errorf("broadcasts %v, want those after the smallest after: [2 4 6]", got)
	}
	if err := resp.Validate(req); err != nil {
		t.Fatal(err)
	}
	if got := seqs(resp.For(req, 0)); !reflect.DeepEqual(got, []uint64{4, 5, 6}) {
		t.Errorf("For(a after 3) = %v, want [4 5 6]", got)
	}
	if got := seqs(resp.For(req, 1)); !reflect.DeepEqual(got, []uint64{2, 3, 4, 5, 6}) {
		t.Errorf("For(b after 1) = %v, want [2 3 4 5 6]", got)
	}
}

func TestBufferBounds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		cfg   BufferConfig
		adds  func(b *Buffer)
		at    time.Time
		dev   string
		want  []uint64
		stats Stats
	}{
		{
			name: "TTL expires events",
			cfg:  BufferConfig{TTL: time.Minute, PerDevice: 10, Broadcasts: 10, MaxBytes: 1 << 20},
			adds: func(b *Buffer) {
				b.Add(t0, ev(1), false, []string{"a"})
				b.Add(t0.Add(30*time.Second), ev(2), false, []string{"a"})
				b.Add(t0.Add(40*time.Second), ev(3), true, nil)
			},
			at: t0.Add(61 * time.Second), dev: "a", want: []uint64{2, 3},
			stats: Stats{Events: 2, Devices: 1},
		},
		{
			name: "everything expired frees the device",
			cfg:  BufferConfig{TTL: time.Minute, PerDevice: 10, Broadcasts: 10, MaxBytes: 1 << 20},
			adds: func(b *Buffer) { b.Add(t0, ev(1), false, []string{"a", "b"}) },
			at:   t0.Add(time.Hour), dev: "a", want: []uint64{},
			stats: Stats{},
		},
		{
			name: "per-device bound keeps the newest",
			cfg:  BufferConfig{TTL: time.Minute, PerDevice: 2, Broadcasts: 10, MaxBytes: 1 << 20},
			adds: func(b *Buffer) {
				for i := uint64(1); i <= 5; i++ {
					b.Add(t0, ev(i), false, []string{"a"})
				}
			},
			at: t0, dev: "a", want: []uint64{4, 5},
			stats: Stats{Events: 5, Devices: 1},
		},
		{
			name: "broadcast bound keeps the newest",
			cfg:  BufferConfig{TTL: time.Minute, PerDevice: 10, Broadcasts: 2, MaxBytes: 1 << 20},
			adds: func(b *Buffer) {
				for i := uint64(1); i <= 4; i++ {
					b.Add(t0, ev(i), true, nil)
				}
			},
			at: t0, dev: "z", want: []uint64{3, 4},
			stats: Stats{Events: 4},
		},
		{
			name: "byte bound drops the oldest",
			cfg:  BufferConfig{TTL: time.Minute, PerDevice: 100, Broadcasts: 100, MaxBytes: 64 << 10},
			adds: func(b *Buffer) {
				big := json.RawMessage(`"` + strings.Repeat("x", 20<<10) + `"`)
				for i := uint64(1); i <= 5; i++ {
					b.Add(t0, Event{Seq: i, Data: big}, false, []string{"a"})
				}
			},
			at: t0, dev: "a", want: []uint64{3, 4, 5},
			stats: Stats{Events: 3, Devices: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuffer(t, tc.cfg)
			tc.adds(b)
			if got := seqs(b.Since(tc.at, tc.dev, 0)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Since = %v, want %v", got, tc.want)
			}
			st := b.Stats()
			st.Bytes = 0
			if st != tc.stats {
				t.Errorf("Stats = %+v, want %+v", st, tc.stats)
			}
			if tc.stats == (Stats{}) && b.Stats().Bytes != 0 {
				t.Errorf("an empty buffer accounts %d bytes", b.Stats().Bytes)
			}
		})
	}
}

func TestBufferWithoutTTLKeepsNothing(t *testing.T) {
	b := newTestBuffer(t, BufferConfig{PerDevice: 1, Broadcasts: 1, MaxBytes: 1 << 20})
	if _, ok := b.Add(time.Now(), ev(1), true, nil); ok {
		t.Error("a buffer without TTL kept an event")
	}
}

func TestBufferConfigValidate(t *testing.T) {
	if err := (BufferConfig{TTL: -1, PerDevice: 0, Broadcasts: 0, MaxBytes: 1}).Validate(); err == nil {
		t.Fatal("bad bounds accepted")
	} else if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("got %d problems, want 4: %v", n, err)
	}
}

func TestReplayResponseValidate(t *testing.T) {
	req := &ReplayRequest{Devices: []DeviceAfter{{"a", 0}}}
	for _, tc := range []struct {
		name string
		resp ReplayResponse
		ok   bool
	}{
		{"ok", ReplayResponse{Broadcasts: []Event{ev(1)}, Devices: [][]Event{{ev(2)}}}, true},
		{"wrong device count", ReplayResponse{Devices: [][]Event{{}, {}}}, false},
		{"out of order", ReplayResponse{Devices: [][]Event{{ev(3), ev(2)}}}, false},
		{"bad data", ReplayResponse{Devices: [][]Event{{{Seq: 1, Data: json.RawMessage("{")}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.resp.Validate(req); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
