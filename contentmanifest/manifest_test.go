package contentmanifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

var sumA = hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("a")); return s[:] }())

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		ok   bool
	}{
		{"good", `{"package":"PS100001","version":"3","files":[{"name":"setup.exe","size":1,"sha256":"` + sumA + `"},{"name":"x64/data (1).cab","size":0,"sha256":"` + sumA + `"}]}`, true},
		{"no files", `{"package":"P","version":"1","files":[]}`, true},
		{"unknown field", `{"package":"P","version":"1","files":[],"signed":true}`, false},
		{"trailing data", `{"package":"P","version":"1","files":[]} {}`, false},
		{"bad package", `{"package":"../P","version":"1","files":[]}`, false},
		{"empty version", `{"package":"P","version":"","files":[]}`, false},
		{"dot segment", `{"package":"P","version":"1","files":[{"name":"a/../b","size":1,"sha256":"` + sumA + `"}]}`, false},
		{"hidden file", `{"package":"P","version":"1","files":[{"name":".manifest.json","size":1,"sha256":"` + sumA + `"}]}`, false},
		{"empty segment", `{"package":"P","version":"1","files":[{"name":"a//b","size":1,"sha256":"` + sumA + `"}]}`, false},
		{"backslash", `{"package":"P","version":"1","files":[{"name":"a\\b","size":1,"sha256":"` + sumA + `"}]}`, false},
		{"negative size", `{"package":"P","version":"1","files":[{"name":"a","size":-1,"sha256":"` + sumA + `"}]}`, false},
		{"upper-case hash", `{"package":"P","version":"1","files":[{"name":"a","size":1,"sha256":"` + strings.ToUpper(sumA) + `"}]}`, false},
		{"short hash", `{"package":"P","version":"1","files":[{"name":"a","size":1,"sha256":"abc"}]}`, false},
		{"listed twice", `{"package":"P","version":"1","files":[{"name":"a","size":1,"sha256":"` + sumA + `"},{"name":"a","size":1,"sha256":"` + sumA + `"}]}`, false},
		{"not json", `<xml/>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("Parse: %v, want ok %v", err, tc.ok)
			}
			if m != nil && len(m.Files) > 0 {
				f, ok := m.Lookup(m.Files[0].Name)
				if !ok || f.Sum() != sha256.Sum256([]byte("a")) {
					t.Errorf("Lookup(%q) = %+v %v", m.Files[0].Name, f, ok)
				}
			}
		})
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		pkg, ver, file string
		want           string
	}{
		{"PS100001", "1", "setup.exe", "PS100001/1/setup.exe"},
		{"P", "2", "x64/my file (1).msi", "P/2/x64/my%20file%20%281%29.msi"},
		{"P", "2", "a&b=c", "P/2/a&b=c"},
	} {
		if got := FilePath(tc.pkg, tc.ver, tc.file); got != tc.want {
			t.Errorf("FilePath(%q, %q, %q) = %q, want %q", tc.pkg, tc.ver, tc.file, got, tc.want)
		}
	}
	if got, want := ManifestPath("P", "1"), "P/1/.manifest.json"; got != want {
		t.Errorf("ManifestPath = %q, want %q", got, want)
	}
	if got, want := DeviceURL("https://gw", "P", "1", "a b"), "https://gw/cmg/v1/content/P/1/a%20b"; got != want {
		t.Errorf("DeviceURL = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		rest           string
		pkg, ver, file string
		ok             bool
	}{
		{"P/1/f", "P", "1", "f", true},
		{"P/1/a/b/c", "P", "1", "a/b/c", true},
		{"P/1/", "", "", "", false},
		{"P/1", "", "", "", false},
		{"P", "", "", "", false},
		{"/1/f", "", "", "", false},
	} {
		pkg, ver, file, ok := SplitDevicePath(tc.rest)
		if pkg != tc.pkg || ver != tc.ver || file != tc.file || ok != tc.ok {
			t.Errorf("SplitDevicePath(%q) = %q %q %q %v, want %q %q %q %v", tc.rest, pkg, ver, file, ok, tc.pkg, tc.ver, tc.file, tc.ok)
		}
	}
}

func TestValidFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"setup.exe", true},
		{"a/b/c.cab", true},
		{"Lang (en-US)/x+y@z,1=2!$&'~.bin", true},
		{"", false},
		{"a/", false},
		{"/a", false},
		{".a", false},
		{"a/.b", false},
		{" a", false},
		{"a ", false},
		{"a?b", false},
		{"a%2fb", false},
		{"a\x00b", false},
		{"é", false},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("a/", 16) + "a", false},
		{strings.Repeat("a/", 15) + "a", true},
	} {
		if err := ValidFile(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidFile(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"package":"P","version":"1","files":[{"name":"a/b","size":3,"sha256":"` + sumA + `"}]}`))
	f.Add([]byte(`{"package":"P","version":"1","files":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		// What parses re-encodes and parses to the same manifest.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded manifest does not parse: %v", err)
		}
		if len(m2.Files) != len(m.Files) || m2.Package != m.Package || m2.Version != m.Version {
			t.Fatalf("round trip changed the manifest")
		}
		for _, f := range m.Files {
			for _, seg := range strings.Split(FilePath(m.Package, m.Version, f.Name), "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("file %q makes the ambiguous path segment %q", f.Name, seg)
				}
			}
		}
	})
}

func FuzzSplitDevicePath(f *testing.F) {
	f.Add("P/1/a/b")
	f.Add("//")
	f.Fuzz(func(t *testing.T, rest string) {
		pkg, ver, file, ok := SplitDevicePath(rest)
		if !ok {
			return
		}
		if pkg+"/"+ver+"/"+file != rest {
			t.Fatalf("SplitDevicePath(%q) lost bytes: %q %q %q", rest, pkg, ver, file)
		}
		if ValidSegment(pkg) == nil && ValidSegment(ver) == nil && ValidFile(file) == nil {
			for _, seg := range strings.Split(rest, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("valid names made an ambiguous path %q", rest)
				}
			}
		}
	})
}
