// Package doccheck holds a test, and nothing else, that fails when a
// package in the module has no package comment saying what it owns
// (STYLE.md: every package has a package comment), as tailscale's
// doc-comment check does.
package doccheck
