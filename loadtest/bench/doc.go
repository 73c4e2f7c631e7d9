// Package bench holds the benchmark harness of the hot path (the script run,
// see README.md) and the test that keeps its quick smoke mode working in CI.
package bench
