package cost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// The state file keeps the distinct-device sketches across restarts. It is JSON:
//
//	{"format": "cmg-devices-state", "version": 1,
//	 "key_id": "<16 hex digits: HMAC of a constant under the hashing key>",
//	 "saved_at": "<RFC 3339>",
//	 "windows": [{"name": "24h", "bucket_seconds": 3600,
//	              "buckets": [{"n": <bucket start / bucket width since the epoch>,
//	                           "sketch": "<base64 HyperLogLog sketch>"}]}]}
//
// It holds no device identity, in clear or hashed one by one: a sketch keeps
// per register the longest run of leading zeros among the keyed hashes that
// fell in it (and, while sparse, 25-bit positions derived from those hashes),
// which is enough to estimate how many devices there were and not which ones.
// The key_id only lets a restart tell whether the hashing key changed, in which
// case the old sketches cannot be merged with new ones and are dropped.

const (
	stateFormat  = "cmg-devices-state"
	stateVersion = 1
	// maxStateBytes bounds what DecodeState reads: the sketches of every
	// window, dense and base64-encoded, take under 1.6 MB.
	maxStateBytes = 4 << 20
)

// ErrStateKey is returned (wrapped) by DecodeState for a state written under
// another hashing key.
var ErrStateKey = errors.New("state was written under another hashing key")

type stateFile struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	KeyID   string        `json:"key_id"`
	SavedAt time.Time     `json:"saved_at"`
	Windows []stateWindow `json:"windows"`
}

type stateWindow struct {
	Name          string        `json:"name"`
	BucketSeconds int64         `json:"bucket_seconds"`
	Buckets       []stateBucket `json:"buckets"`
}

type stateBucket struct {
	N      int64  `json:"n"`
	Sketch []byte `json:"sketch"`
}

// EncodeState returns d's sketches as a state file.
func (d *Devices) EncodeState() ([]byte, error) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := stateFile{Format: stateFormat, Version: stateVersion, KeyID: d.keyID, SavedAt: now.UTC()}
	for _, r := range d.windows {
		sw := stateWindow{Name: r.w.Name, BucketSeconds: int64(r.w.Bucket / time.Second)}
		for _, b := range r.slots {
			if b.sk == nil {
				continue
			}
			data, err := b.sk.MarshalBinary()
			if err != nil {
				return nil, fmt.Errorf("cost: encode sketch: %w", err)
			}
			sw.Buckets = append(sw.Buckets, stateBucket{N: b.n, Sketch: data})
		}
		st.Windows = append(st.Windows, sw)
	}
	return json.Marshal(st)
}

// DecodeState replaces d's sketches with those of a state file written under the
// same key. It checks everything before changing d: on error d is unchanged.
// Windows the file has and d has not, or whose bucket width changed, are
// skipped, and so are buckets that lie in the future.
func (d *Devices) DecodeState(data []byte) error {
	rings, err := decodeRings(data, d.keyID, d.now())
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, r := range rings {
		if r != nil {
			d.windows[i] = r
		}
	}
	return nil
}

func decodeRings(data []byte, keyID string, now time.Time) ([]*bucketRing, error) {
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("cost: state of %d bytes is over the %d-byte limit", len(data), maxStateBytes)
	}
	var st stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("cost: state: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("cost: state: data after the JSON object")
	}
	if st.Format != stateFormat || st.Version != stateVersion {
		return nil, fmt.Errorf("cost: state: format %q version %d, want %q version %d", st.Format, st.Version, stateFormat, stateVersion)
	}
	if st.KeyID != keyID {
		return nil, fmt.Errorf("cost: %w", ErrStateKey)
	}
	rings := make([]*bucketRing, len(Windows))
	for _, sw := range st.Windows {
		i := windowIndex(sw.Name)
		if i < 0 || sw.BucketSeconds != int64(Windows[i].Bucket/time.Second) {
			continue
		}
		if rings[i] != nil {
			return nil, fmt.Errorf("cost: state: window %q appears twice", sw.Name)
		}
		r, err := decodeRing(Windows[i], sw.Buckets, now)
		if err != nil {
			return nil, fmt.Errorf("cost: state: window %q: %w", sw.Name, err)
		}
		rings[i] = r
	}
	return rings, nil
}

func windowIndex(name string) int {
	for i, w := range Windows {
		if w.Name == name {
			return i
		}
	}
	return -1
}

func decodeRing(w Window, buckets []stateBucket, now time.Time) (*bucketRing, error) {
	r := newBucketRing(w)
	if len(buckets) > len(r.slots) {
		return nil, fmt.Errorf("%d buckets, at most %d", len(buckets), len(r.slots))
	}
	cur := r.number(now)
	for _, sb := range buckets {
		sk := new(hyperloglog.Sketch)
		if err := sk.UnmarshalBinary(sb.Sketch); err != nil {
			return nil, fmt.Errorf("bucket %d: %w", sb.N, err)
		}
		// A sketch of another precision cannot be merged with ours.
		if err := newSketch().Merge(sk); err != nil {
			return nil, fmt.Errorf("bucket %d: %w", sb.N, err)
		}
		if sb.N > cur {
			continue // from the future: a clock that went back; drop it
		}
		slot := r.slot(sb.N)
		if slot.sk != nil && slot.n == sb.N {
			return nil, fmt.Errorf("bucket %d appears twice", sb.N)
		}
		if slot.sk == nil || slot.n < sb.N {
			*slot = bucket{n: sb.N, sk: sk}
		}
	}
	return r, nil
}
