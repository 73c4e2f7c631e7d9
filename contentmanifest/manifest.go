// Package contentmanifest is the one format the content path shares between its
// three parties: what a distribution point publishes for a package version (its
// manifest: every file with its size and SHA-256), the names a package, a version
// and a file may have, and the paths devices and gateways use for them. The
// gateway's pull-through cache verifies every file it fetches against the
// manifest; the simulated distribution point (loadtest/roles) publishes one; the
// load tester's content client builds its URLs from here.
//
// It is a leaf: it imports nothing from this repository.
package contentmanifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DevicePrefix is where devices download content: DevicePrefix +
// <package>/<version>/<file>.
const DevicePrefix = "/cmg/v1/content/"

// ManifestName is the manifest's file name inside a version's directory on a
// distribution point: <package>/<version>/.manifest.json. No device file can
// have it (file names never start with a dot).
const ManifestName = ".manifest.json"

// MaxBytes bounds a manifest document.
const MaxBytes = 4 << 20

// Limits on names.
const (
	maxSegment  = 255
	maxSegments = 16
)

// Manifest is what a distribution point publishes for one package version.
type Manifest struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Files   []File `json:"files"`
}

// File is one file of a package version.
type File struct {
	// Name is the file's path inside the version: one or more segments
	// separated by "/".
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the lower-case hex SHA-256 of the file's bytes.
	SHA256 string `json:"sha256"`
}

// Sum returns the file's SHA-256 as bytes.
func (f File) Sum() [32]byte {
	var s [32]byte
	_, _ = hex.Decode(s[:], []byte(f.SHA256))
	return s
}

// Parse decodes and checks a manifest: known fields only, valid names, sizes
// and hashes, no file listed twice.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("contentmanifest: %d bytes, more than %d", len(data), MaxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("contentmanifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("contentmanifest: data after the manifest")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate reports the first problem of the manifest.
func (m *Manifest) Validate() error {
	if err := ValidSegment(m.Package); err != nil {
		return fmt.Errorf("contentmanifest: package: %w", err)
	}
	if err := ValidSegment(m.Version); err != nil {
		return fmt.Errorf("contentmanifest: version: %w", err)
	}
	seen := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		if err := ValidFile(f.Name); err != nil {
			return fmt.Errorf("contentmanifest: files[%d]: %w", i, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("contentmanifest: files[%d]: %q is listed twice", i, f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return fmt.Errorf("contentmanifest: files[%d]: negative size", i)
		}
		if !validSHA256(f.SHA256) {
			return fmt.Errorf("contentmanifest: files[%d]: sha256 is not 64 lower-case hex digits", i)
		}
	}
	return nil
}

// Lookup returns the file named name.
func (m *Manifest) Lookup(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidSegment checks a package id, a version or one segment of a file name:
// 1 to 255 bytes of letters, digits, space and ._-~+()@,=!$&', not starting
// with a dot or a space and not ending with a space (so no dot segment, no
// hidden file, nothing that could mean something else on the way).
func ValidSegment(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > maxSegment {
		return fmt.Errorf("name longer than %d bytes", maxSegment)
	}
	if s[0] == '.' || s[0] == ' ' || s[len(s)-1] == ' ' {
		return fmt.Errorf("%q starts with a dot or a space, or ends with a space", s)
	}
	for i := 0; i < len(s); i++ {
		if !segmentByte(s[i]) {
			return fmt.Errorf("%q has a character outside letters, digits, space and ._-~+()@,=!$&'", s)
		}
	}
	return nil
}

func segmentByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte(" ._-~+()@,=!$&'", c) >= 0
}

// ValidFile checks a file name: 1 to 16 valid segments joined by "/".
func ValidFile(name string) error {
	n := 0
	for seg := range strings.SplitSeq(name, "/") {
		n++
		if n > maxSegments {
			return fmt.Errorf("more than %d path segments", maxSegments)
		}
		if err := ValidSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

// SplitDevicePath splits the part of a device path after DevicePrefix into
// package, version and file. ok is false when it does not have at least three
// segments; the names are not checked (see ValidSegment, ValidFile).
func SplitDevicePath(rest string) (pkg, version, file string, ok bool) {
	pkg, after, ok1 := strings.Cut(rest, "/")
	version, file, ok2 := strings.Cut(after, "/")
	if !ok1 || !ok2 || pkg == "" || version == "" || file == "" {
		return "", "", "", false
	}
	return pkg, version, file, true
}

// FilePath is the escaped path of a file relative to a distribution point's
// (or the device prefix's) root: <package>/<version>/<file>, each segment
// escaped.
func FilePath(pkg, version, file string) string {
	var b strings.Builder
	b.Grow(len(pkg) + len(version) + len(file) + 8)
	b.WriteString(url.PathEscape(pkg))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(version))
	for seg := range strings.SplitSeq(file, "/") {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
}

// ManifestPath is the escaped path of a version's manifest relative to a
// distribution point's root.
func ManifestPath(pkg, version string) string {
	return url.PathEscape(pkg) + "/" + url.PathEscape(version) + "/" + ManifestName
}

// DeviceURL is the URL devices download a file from, given the gateway's base
// URL (scheme and host, no trailing slash).
func DeviceURL(base, pkg, version, file string) string {
	return base + DevicePrefix + FilePath(pkg, version, file)
}
