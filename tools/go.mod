module github.com/cmg-gateway/cmg/tools

go 1.26

// Pinned Go tools the tests use, kept out of the product's go.mod.
// Build one with: go -C tools build -o ../bin/<name> <package>

require github.com/grafana/grafana-foundation-sdk/go v0.0.22

tool github.com/cmg-gateway/cmg/tools/dashcheck
