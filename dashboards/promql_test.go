package dashboards

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// This file reads what the dashboards and rules need from a PromQL expression:
// the metric names it selects, the label names it matches on or groups by, and
// the equality matchers. It is a lexer with just enough grammar for that, so the
// product's go.mod needs no Prometheus server module; the real Prometheus parses
// and evaluates every expression in TestAgainstDemo.

type tokKind int

const (
	tokIdent tokKind = iota
	tokString
	tokNumber
	tokPunct
	tokVar // a Grafana variable: $name or ${name}
)

type token struct {
	kind tokKind
	text string // for strings, the unquoted value
}

// lexPromQL splits expr into tokens. It reports an unterminated string.
func lexPromQL(expr string) ([]token, error) {
	var out []token
	r := []rune(expr)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '$':
			j := i + 1
			if j < len(r) && r[j] == '{' {
				for j < len(r) && r[j] != '}' {
					j++
				}
				j++
			} else {
				for j < len(r) && isIdentRune(r[j]) {
					j++
				}
			}
			j = min(j, len(r))
			out = append(out, token{tokVar, string(r[i:j])})
			i = j
		case c == '#': // comment to end of line
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(r) && r[j] != c; j++ {
				if r[j] == '\\' && c != '`' && j+1 < len(r) {
					j++
				}
				b.WriteRune(r[j])
			}
			if j >= len(r) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, token{tokString, b.String()})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(r) && r[i+1] >= '0' && r[i+1] <= '9':
			// Numbers, durations (5m, 1h30m) and exponents (1e-9) are one token.
			j := i
			for j < len(r) && (isIdentRune(r[j]) || r[j] == '.' ||
				(r[j] == '-' || r[j] == '+') && (r[j-1] == 'e' || r[j-1] == 'E')) {
				j++
			}
			out = append(out, token{tokNumber, string(r[i:j])})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(r) && (isIdentRune(r[j]) || r[j] == ':') {
				j++
			}
			out = append(out, token{tokIdent, string(r[i:j])})
			i = j
		default:
			// Two-character operators matter only as punctuation here.
			if i+1 < len(r) && strings.Contains("=~ != >= <= == !~", string(r[i:i+2])) {
				out = append(out, token{tokPunct, string(r[i : i+2])})
				i += 2
				continue
			}
			out = append(out, token{tokPunct, string(c)})
			i++
		}
	}
	return out, nil
}

func isIdentStart(c rune) bool { return c == '_' || c == ':' || unicode.IsLetter(c) }
func isIdentRune(c rune) bool  { return c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c) }

var (
	promKeywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true,
		"offset": true, "atan2": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
	}
	labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// matcher is one label matcher of a selector.
type matcher struct {
	label, op, value string
}

// selector is one vector selector: a metric name and its matchers.
type selector struct {
	metric   string
	matchers []matcher
}

// exprInfo is what an expression uses.
type exprInfo struct {
	selectors []selector
	// grouping are the label names of by/without/on/ignoring/group_x lists.
	grouping []string
}

func (e exprInfo) metrics() []string {
	var out []string
	for _, s := range e.selectors {
		if !slices.Contains(out, s.metric) {
			out = append(out, s.metric)
		}
	}
	return out
}

// analyze extracts the selectors and grouping labels of expr. Selectors without a
// metric name ({__name__=...}) are refused: the dashboards never use them, and a
// name check could not see through them.
func analyze(expr string) (exprInfo, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return exprInfo{}, err
	}
	var info exprInfo
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tokIdent && labelListKeywords[t.text]:
			// by (a, b): a label list follows (group_left may have none).
			if i+1 < len(toks) && toks[i+1].text == "(" {
				j := i + 2
				for ; j < len(toks) && toks[j].text != ")"; j++ {
					if toks[j].kind == tokIdent {
						info.grouping = append(info.grouping, toks[j].text)
					}
				}
				i = j
			}
		case t.kind == tokIdent && !promKeywords[t.text]:
			next := ""
			if i+1 < len(toks) {
				next = toks[i+1].text
			}
			if next == "(" || aggregators[t.text] && (next == "by" || next == "without") {
				continue // a function or an aggregation
			}
			sel := selector{metric: t.text}
			if next == "{" {
				ms, end, err := parseMatchers(toks, i+2)
				if err != nil {
					return exprInfo{}, fmt.Errorf("%s: %w", t.text, err)
				}
				sel.matchers, i = ms, end
			}
			info.selectors = append(info.selectors, sel)
		case t.text == "{":
			return exprInfo{}, fmt.Errorf("a selector without a metric name at token %d", i)
		}
	}
	return info, nil
}

var aggregators = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// parseMatchers reads `label op "value", ...}` from toks[i:], returning the index of
// the closing brace.
func parseMatchers(toks []token, i int) ([]matcher, int, error) {
	var ms []matcher
	for i < len(toks) {
		if toks[i].text == "}" {
			return ms, i, nil
		}
		if toks[i].text == "," {
			i++
			continue
		}
		if i+2 >= len(toks) || toks[i].kind != tokIdent || toks[i+1].kind != tokPunct || toks[i+2].kind != tokString {
			return nil, 0, fmt.Errorf("bad matcher at token %d", i)
		}
		ms = append(ms, matcher{toks[i].text, toks[i+1].text, toks[i+2].text})
		i += 3
	}
	return nil, 0, fmt.Errorf("unclosed matchers")
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name     string
		expr     string
		metrics  []string
		grouping []string
		matchers map[string][]matcher
	}{
		{
			name:    "plain metric",
			expr:    "go_goroutines",
			metrics: []string{"go_goroutines"},
		},
		{
			name:     "rate with matchers and aggregation",
			expr:     `sum by (role, code) (rate(cmg_gateway_requests_total{instance=~"a|b", role="x"}[5m])) > 0`,
			metrics:  []string{"cmg_gateway_requests_total"},
			grouping: []string{"role", "code"},
			matchers: map[string][]matcher{"cmg_gateway_requests_total": {{"instance", "=~", "a|b"}, {"role", "=", "x"}}},
		},
		{
			name:     "histogram quantile",
			expr:     "histogram_quantile(0.99, sum without (instance) (rate(x_bucket[5m])))",
			metrics:  []string{"x_bucket"},
			grouping: []string{"instance"},
		},
		{
			name:     "binary operators, keywords, numbers and vector matching",
			expr:     "a >= ignoring (level) b{level=\"warning\"} unless on (job) c - time() < 14 * 86400 and abs(d - 0.91) < bool 1e-9 or vector(0)",
			metrics:  []string{"a", "b", "c", "d"},
			grouping: []string{"level", "job"},
			matchers: map[string][]matcher{"b": {{"level", "=", "warning"}}},
		},
		{
			name:    "recording rule names and an aggregation without grouping",
			expr:    "sum(job:cmg_cost_projected_monthly:sum) / count(instance:x:ratio offset 5m)",
			metrics: []string{"job:cmg_cost_projected_monthly:sum", "instance:x:ratio"},
		},
		{
			name:     "aggregation with the grouping after the argument",
			expr:     `max(go_info) by (version) * on (instance) group_left (component) cmg_build_info{component='gateway'}`,
			metrics:  []string{"go_info", "cmg_build_info"},
			grouping: []string{"version", "instance", "component"},
			matchers: map[string][]matcher{"cmg_build_info": {{"component", "=", "gateway"}}},
		},
		{
			name:    "Grafana variables are not names",
			expr:    `rate(x{instance=~"$instance"}[$__rate_interval]) * ${factor}`,
			metrics: []string{"x"},
		},
		{
			name:    "strings and escapes are not names",
			expr:    `label_replace(up, "dst", "x\"y", "src", "(.*)")`,
			metrics: []string{"up"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := analyze(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.metrics(); !slices.Equal(got, tc.metrics) {
				t.Errorf("metrics: got %q, want %q", got, tc.metrics)
			}
			if !slices.Equal(info.grouping, tc.grouping) {
				t.Errorf("grouping: got %q, want %q", info.grouping, tc.grouping)
			}
			for _, s := range info.selectors {
				if want, ok := tc.matchers[s.metric]; ok && !slices.Equal(s.matchers, want) {
					t.Errorf("matchers of %s: got %+v, want %+v", s.metric, s.matchers, want)
				}
			}
		})
	}
}

func TestAnalyzeRefuses(t *testing.T) {
	for _, expr := range []string{`{__name__="x"}`, `x{a="b"`, `x{a=}`, `x{a="b}`} {
		if _, err := analyze(expr); err == nil {
			t.Errorf("analyze(%q): got no error, want one", expr)
		}
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		`sum by (role) (rate(cmg_gateway_requests_total{instance=~"$instance"}[5m]))`,
		"a >= ignoring (level) b{level=\"w\"} unless c",
		"histogram_quantile(0.5, x_bucket)", `x{a="\"}"}`, "1e-9 + .5", "`raw`",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		info, err := analyze(expr)
		if err != nil {
			return
		}
		for _, s := range info.selectors {
			if s.metric == "" {
				t.Fatalf("analyze(%q): a selector without a name", expr)
			}
		}
	})
}
