package roles

import (
	"io"
	"strconv"
	"testing"
)

func BenchmarkBlobRead(b *testing.B) {
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	r := NewBlobReader(1, 1<<62)
	for b.Loop() {
		_, _ = io.ReadFull(r, buf)
	}
}

func BenchmarkReplies(b *testing.B) {
	s, err := New(DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	m := clientMessage("MP_PolicyManager", "Sync", assignmentsBody)
	info := scanBody(m.Body)
	for _, bc := range []struct {
		name string
		f    func(i int)
	}{
		{"policy assignments full", func(int) { s.encodeReply(&m, kindAssignments, s.replyBody(kindAssignments, &m, info, "")) }},
		{"policy body", func(i int) { s.policyBodyText(strconv.Itoa(i)) }},
		{"CI document zlib", func(i int) { s.ciDocument(strconv.Itoa(i), true) }},
		{"SyncUpdates delta", func(int) { s.syncUpdatesReply(soapRequest{CachedIDs: 1}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				bc.f(i)
				i++
			}
		})
	}
}
