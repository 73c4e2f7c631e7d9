package cost

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func observed(c *fakeClock, n int) (*Devices, []string) {
	d := NewDevices(testKey, c.Now)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("Device-%04d.Corp.Example", i)
		d.Observe(ids[i])
		if i%50 == 0 {
			c.Advance(37 * time.Minute) // fill buckets of every window
		}
	}
	return d, ids
}

func TestStateRoundTripWithoutIdentities(t *testing.T) {
	c := newFakeClock()
	d, ids := observed(c, 500)
	path := filepath.Join(t.TempDir(), "devices.state")
	if err := d.SaveState(path); err != nil {
		t.Fatalf("SaveState: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lower := bytes.ToLower(data)
	for _, id := range ids {
		sum := sha256.Sum256([]byte(id))
		for _, form := range []string{id, strings.ToLower(id), base64.StdEncoding.EncodeToString([]byte(id)), hex.EncodeToString(sum[:])} {
			if bytes.Contains(lower, []byte(strings.ToLower(form))) {
				t.Fatalf("the state file holds %q (a form of identity %q)", form, id)
			}
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: got %v, %v, want 0600", fi.Mode().Perm(), err)
	}

	restored := NewDevices(testKey, c.Now)
	if err := restored.LoadState(path); err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	if got, want := restored.Active(), d.Active(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored counts: got %v, want %v", got, want)
	}
	// A device seen before the restart is not counted again after it.
	restored.Observe(ids[len(ids)-1])
	if got, want := restored.Active(), d.Active(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after seeing a known device again: got %v, want %v", got, want)
	}
	// The windows keep moving after a restart: a day later, only 30d remembers.
	c.Advance(26 * time.Hour)
	if got := restored.Active(); got[0] != 0 || got[1] != 0 || got[2] != 500 {
		t.Errorf("a day later: got %v, want [0 0 500]", got)
	}
}

func TestStateOtherKey(t *testing.T) {
	c := newFakeClock()
	d, _ := observed(c, 20)
	data, err := d.EncodeState()
	if err != nil {
		t.Fatal(err)
	}
	other := NewDevices([]byte("a different per-install key......"), c.Now)
	other.Observe("kept")
	if err := other.DecodeState(data); !errors.Is(err, ErrStateKey) {
		t.Errorf("got %v, want ErrStateKey", err)
	}
	if got := other.ActiveIn("24h"); got != 1 {
		t.Errorf("after a refused state: got %d devices, want the 1 it had", got)
	}
}

func TestStateMissingFile(t *testing.T) {
	d := NewDevices(testKey, newFakeClock().Now)
	if err := d.LoadState(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("a missing state file: got %v, want nil (a first start)", err)
	}
}

func TestDecodeStateRefuses(t *testing.T) {
	c := newFakeClock()
	d, _ := observed(c, 10)
	good, err := d.EncodeState()
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte { return []byte(strings.Replace(string(good), old, new, 1)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("registers!")},
		{"trailing data", append(append([]byte{}, good...), []byte(" {}")...)},
		{"unknown field", replace(`"version":1`, `"version":1,"identities":["a"]`)},
		{"another format", replace(stateFormat, "something-else")},
		{"another version", replace(`"version":1`, `"version":2`)},
		{"a broken sketch", replace(`"sketch":"`, `"sketch":"AAAA`)},
		{"too large", bytes.Repeat([]byte(" "), maxStateBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh := NewDevices(testKey, c.Now)
			fresh.Observe("kept")
			if err := fresh.DecodeState(tt.data); err == nil {
				t.Errorf("got no error, want one")
			}
			if got := fresh.ActiveIn("24h"); got != 1 {
				t.Errorf("after a refused state: got %d devices, want the 1 it had", got)
			}
		})
	}
}

func TestDecodeStateSkipsFutureAndUnknown(t *testing.T) {
	c := newFakeClock()
	d := NewDevices(testKey, c.Now)
	for i := range 5 {
		d.Observe(fmt.Sprint("early-", i))
	}
	c.Advance(3 * time.Hour)
	for i := range 5 {
		d.Observe(fmt.Sprint("late-", i))
	}
	data, _ := d.EncodeState()
	// Read back by a clock two hours behind: the late hour's bucket lies in
	// the future and is dropped; the early one loads.
	e := NewDevices(testKey, func() time.Time { return c.Now().Add(-2 * time.Hour) })
	if err := e.DecodeState(data); err != nil {
		t.Fatalf("DecodeState: %v", err)
	}
	if got := e.ActiveIn("24h"); got != 5 {
		t.Errorf("got %d devices, want the 5 of the early hour", got)
	}
	unknown := []byte(strings.Replace(string(data), `"name":"1h"`, `"name":"1w"`, 1))
	if err := NewDevices(testKey, c.Now).DecodeState(unknown); err != nil {
		t.Errorf("an unknown window: got %v, want it skipped", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device-hash.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil || len(k1) != keySize {
		t.Fatalf("create: got %d bytes, %v; want %d", len(k1), err, keySize)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v, %v, want 0600", fi.Mode().Perm(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("read back: got %x, %v; want %x", k2, err, k1)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(short); err == nil {
		t.Errorf("a 4-byte key: got no error, want one")
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "no", "such", "dir.key")); err == nil {
		t.Errorf("a key in a missing directory: got no error, want one")
	}
}

func FuzzDecodeState(f *testing.F) {
	c := newFakeClock()
	d, _ := observed(c, 300)
	good, err := d.EncodeState()
	if err != nil {
		f.Fatal(err)
	}
	now := c.Now()
	f.Add(good)
	empty, _ := NewDevices(testKey, c.Now).EncodeState()
	f.Add(empty)
	f.Add([]byte(`{"format":"cmg-devices-state","version":1,"key_id":"` + keyID(testKey) + `","windows":[{"name":"1h","bucket_seconds":300,"buckets":[{"n":1,"sketch":"AgQAAQAAAAA="}]}]}`))
	f.Add([]byte(`{"format":"cmg-devices-state","version":1,"key_id":"` + keyID(testKey) + `","windows":[{"name":"24h","bucket_seconds":3600,"buckets":[{"n":-9223372036854775808,"sketch":""}]}]}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, data []byte) {
		clock := func() time.Time { return now }
		d := NewDevices(testKey, clock)
		if err := d.DecodeState(data); err != nil {
			return
		}
		again, err := d.EncodeState()
		if err != nil {
			t.Fatalf("EncodeState after an accepted state: %v", err)
		}
		e := NewDevices(testKey, clock)
		if err := e.DecodeState(again); err != nil {
			t.Fatalf("a re-encoded state is refused: %v", err)
		}
		if got, want := e.Active(), d.Active(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round trip: got %v, want %v", got, want)
		}
	})
}
