// Package apptest holds the node's acceptance test on real rootless
// Podman: a node installs, serves, stops and purges an app through its
// HTTP API. It is a package of its own because its tests run as the
// Podman socket's user (internal/podmantest re-executes them).
package apptest
