// Package setupcheck holds tests, and nothing else, of the project's entry
// points on a new machine: `make test` installs what the tests need before
// anything uses it, and the suite runs from a copy the Podman user can
// read when it cannot enter the checkout (.ci/stage.sh).
package setupcheck
