// Package e2e holds archy's end-to-end test (make e2e), and nothing else:
// three real `archy node run` processes on localhost, each with its
// embedded relay, that find each other through the relays; a developer
// publishes the hello app on A; B and C, each running rootless Podman as
// a different unprivileged user, discover, verify, score and install it
// from the swarm; a forged announcement and a tampered image are refused;
// an uninstall with purge leaves nothing behind. It prints the figures
// publish-to-running-ms and e2e-origin-copies.
//
// The test is behind the e2e build tag: it runs the sample apps on their
// fixed host ports, so it must not run beside the rest of the suite
// (`go test ./...` runs packages in parallel). make e2e runs it, and make
// suite runs make e2e after the suite.
package e2e
