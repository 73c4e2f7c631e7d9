// Package packaging holds the ways cmg is deployed, and the tests that keep them
// in step with the product: the commented example configurations (gateway.yaml,
// connector.yaml, policy.yaml), the hardened systemd units (systemd/), the deb
// package recipe (nfpm.yaml, deb/), the cloud-init appliance (cloud-init/), the
// Helm chart (helm/cmg) and the compose stack (compose/). The root Dockerfile
// builds the container image. scripts/test-packaging builds and runs each of
// them for real; README.md says how to use them.
package packaging
