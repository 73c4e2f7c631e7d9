package policies

import (
	"unicode"
	"unicode/utf8"
)

// globMatch reports whether s matches the glob pattern p as a whole: '*' matches
// any run of characters (none included, commas and slashes included), '?' exactly
// one character, and every other character itself, ignoring case. There is no
// escape character (distinguished names use backslashes themselves); a pattern
// that needs a literal '*' or '?' is written as a regular expression.
//
// It runs in O(len(p)*len(s)) at worst, without allocating: on a mismatch it
// backtracks only to the last star (the classic linear-space wildcard algorithm).
func globMatch(p, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0 // where to resume after the last '*'
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			c, pw := utf8.DecodeRuneInString(p[px:])
			switch c {
			case '*':
				starPx, starSx = px, sx
				px += pw
				continue
			case '?':
				if sx < len(s) {
					_, sw := utf8.DecodeRuneInString(s[sx:])
					px += pw
					sx += sw
					continue
				}
			default:
				if sx < len(s) {
					r, sw := utf8.DecodeRuneInString(s[sx:])
					if foldEqual(c, r) {
						px += pw
						sx += sw
						continue
					}
				}
			}
		}
		// Mismatch: let the last star swallow one more character of s.
		if starPx < 0 || starSx >= len(s) {
			return false
		}
		_, sw := utf8.DecodeRuneInString(s[starSx:])
		starSx += sw
		px, sx = starPx+1, starSx
	}
	return true
}

// foldEqual reports whether a and b are equal under Unicode simple case folding,
// as strings.EqualFold compares runes.
func foldEqual(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}
