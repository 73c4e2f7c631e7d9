package policies

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "CN=a,O=b", true},
		{"CN=*,O=Contoso", "CN=ws1,O=Contoso", true},
		{"CN=*,O=Contoso", "CN=ws1,OU=x,O=Contoso", true},
		{"CN=*,O=Contoso", "CN=ws1,O=Contoso,C=US", false},
		{"CN=?", "CN=é", true},
		{"CN=?", "CN=ab", false},
		{"cn=WS*", "CN=ws42", true},
		{"ÉCOLE*", "école-1", true},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"a*a*a*a*b", strings.Repeat("a", 100), false},
		{`CN=a\,b`, `CN=a\,b`, true},
		{"K", "\u212a", true}, // Kelvin sign folds to K
	}
	for _, tt := range tests {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// globRegexp is the regular expression equivalent of a glob, for FuzzGlob.
func globRegexp(p string) string {
	var b strings.Builder
	b.WriteString(`(?is)^`)
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return b.String()
}

// FuzzGlob checks the hand-written glob matcher against the regexp package.
func FuzzGlob(f *testing.F) {
	f.Add("CN=*,O=Contoso", "CN=ws1,OU=x,O=Contoso")
	f.Add("*a?b*", "xxaYbzz")
	f.Add("ÉCOLE*", "école-1")
	f.Add("K", "\u212a")
	f.Fuzz(func(t *testing.T, p, s string) {
		if !utf8.ValidString(p) || !utf8.ValidString(s) || len(p) > 64 || len(s) > 256 {
			return
		}
		want := regexp.MustCompile(globRegexp(p)).MatchString(s)
		if got := globMatch(p, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, regexp says %v", p, s, got, want)
		}
	})
}
