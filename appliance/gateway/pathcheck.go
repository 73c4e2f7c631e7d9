package gateway

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// ambiguousPath reports the paths that checkPath's plain checks let through but
// a role could read differently (SECURITY.md): bytes that are not UTF-8 (IIS
// once decoded overlong forms such as %c0%af as "/"), and dot segments hidden
// behind path parameters ("/..;/", which Java servers treat as "/../").
func ambiguousPath(p string) bool {
	if !utf8.ValidString(p) {
		return true
	}
	if strings.IndexByte(p, ';') < 0 {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if name, _, ok := strings.Cut(seg, ";"); ok && (name == "." || name == "..") {
			return true
		}
	}
	return false
}

// underscoreSpoof reports whether a header with an underscore in its name would
// read as one the gateway strips (Cmg_Device_Id, X_Forwarded_For) to a role that
// maps both '-' and '_' to '_', as CGI does.
func underscoreSpoof(k string) bool {
	return dropRequestHeader(http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")))
}
