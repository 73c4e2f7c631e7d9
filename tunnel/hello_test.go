package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestHelloRoundTrip(t *testing.T) {
	h := &Hello{Name: "cp1", Site: "site1", Version: "1.0", Capabilities: []string{"notify"},
		Routes: []Route{{RoleID: "72057594037927939", Kind: ManagementPoint, Auth: []string{AuthMutual, AuthServer}}}}
	var b bytes.Buffer
	if err := WriteHello(&b, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHello(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != h.Name || got.Site != h.Site || len(got.Routes) != 1 || got.Routes[0].RoleID != h.Routes[0].RoleID {
		t.Errorf("got %+v, want %+v", got, h)
	}
}

func frame(magic string, ver, typ byte, n uint32, payload string) []byte {
	b := []byte(magic)
	b = append(b, ver, typ)
	b = binary.BigEndian.AppendUint32(b, n)
	return append(b, payload...)
}

func helloFrame(payload string) []byte {
	return frame("cmgT", 1, frameHello, uint32(len(payload)), payload)
}

func TestReadHelloRefuses(t *testing.T) {
	good := `{"name":"cp1","site":"s","routes":[]}`
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty", nil, "EOF"},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), "bad magic"},
		{"bad version", frame("cmgT", 9, frameHello, uint32(len(good)), good), "unsupported hello version"},
		{"ack instead of hello", frame("cmgT", 1, frameAck, uint32(len(good)), good), "unexpected frame type"},
		{"too long", frame("cmgT", 1, frameHello, MaxHelloPayload+1, ""), "longer than 64 KiB"},
		{"truncated", frame("cmgT", 1, frameHello, 100, good), "unexpected EOF"},
		{"not json", frame("cmgT", 1, frameHello, 3, "{{{"), "decode hello"},
		{"trailing", frame("cmgT", 1, frameHello, uint32(len(good)+2), good+"{}"), "trailing data"},
		{"no name", helloFrame(`{"site":"s","x":1}`), "name"},
		{"bad route kind", helloFrame(`{"name":"a","site":"s","routes":[{"role_id":"1","kind":"db","auth":["server_auth"]}]}`), "kind"},
		{"bad role id", helloFrame(`{"name":"a","site":"s","routes":[{"role_id":"1x","kind":"management_point","auth":[]}]}`), "role_id"},
		{"bad auth", helloFrame(`{"name":"a","site":"s","routes":[{"role_id":"1","kind":"management_point","auth":["any"]}]}`), "auth"},
		{"bad site", helloFrame(`{"name":"a","site":"s/t","routes":[]}`), "site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHello(bytes.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHelloLimits(t *testing.T) {
	h := &Hello{Name: "cp1", Site: "s"}
	for i := 0; i < maxRoutes+1; i++ {
		h.Routes = append(h.Routes, Route{RoleID: "1", Kind: ManagementPoint, Auth: []string{AuthMutual}})
	}
	var b bytes.Buffer
	if err := WriteHello(&b, h); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHello(&b); err == nil || !strings.Contains(err.Error(), "routes") {
		t.Errorf("got %v, want a too-many-routes error", err)
	}
	big := &Hello{Name: "cp1", Site: "s", Version: strings.Repeat("x", MaxHelloPayload)}
	if err := WriteHello(&b, big); !errors.Is(err, ErrHelloTooLong) {
		t.Errorf("got %v, want ErrHelloTooLong", err)
	}
}

func FuzzReadHello(f *testing.F) {
	var b bytes.Buffer
	_ = WriteHello(&b, &Hello{Name: "cp1", Site: "site1", Routes: []Route{{RoleID: "72057594037927939", Kind: ManagementPoint, Auth: []string{AuthMutual}}}})
	f.Add(b.Bytes())
	f.Add(frame("cmgT", 1, frameHello, 2, "{}"))
	f.Add([]byte("cmgT"))
	f.Add(frame("cmgT", 1, frameHello, 0xffffffff, ""))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHello(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever is accepted must be valid and survive a round trip.
		if err := h.Validate(); err != nil {
			t.Fatalf("accepted an invalid hello: %v", err)
		}
		var out bytes.Buffer
		if err := WriteHello(&out, h); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := ReadHello(&out); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x0f{\"type\":\"ping\"}"))
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadMessage(bufioReader(data))
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid message: %v", err)
		}
	})
}
