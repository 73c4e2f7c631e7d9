package roles

import (
	"encoding/binary"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// CM's messaging speaks UTF-16LE (Windows' WCHAR); these convert at the edges so the
// rest of the package works on Go strings.

// appendUTF16 appends s encoded as UTF-16LE.
func appendUTF16(b []byte, s string) []byte {
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = binary.LittleEndian.AppendUint16(b, uint16(r1))
			b = binary.LittleEndian.AppendUint16(b, uint16(r2))
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// appendUTF16ASCII appends ASCII s as UTF-16LE; cheaper than appendUTF16 for the large
// generated documents, which are ASCII.
func appendUTF16ASCII(b []byte, s []byte) []byte {
	for _, c := range s {
		b = append(b, c, 0)
	}
	return b
}

var errOddUTF16 = errors.New("roles: UTF-16 text of odd length")

// decodeUTF16 decodes UTF-16LE, dropping a leading byte-order mark. Unpaired
// surrogates become U+FFFD, as Windows tolerates them.
func decodeUTF16(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errOddUTF16
	}
	if len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE {
		b = b[2:]
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	out := make([]byte, 0, len(u))
	for _, r := range utf16.Decode(u) {
		out = utf8.AppendRune(out, r)
	}
	return string(out), nil
}
