#!/usr/bin/env bash
# .ci/setup.sh: everything the tests need beyond Go, installed and started
# on a fresh Debian 12 machine, so that `make test` alone runs the whole
# suite. Idempotent. Prints, on stdout only, the environment the tests read
# (`make test` writes it to .cache/test.env and sources it):
#   ARCHY_PODMAN_SOCKET, ARCHY_PODMAN_USER  rootless Podman (podman-setup.sh)
#   ARCHY_PODMAN_SOCKET2, ARCHY_PODMAN_USER2 a second user's own rootless Podman (make e2e)
#   ARCHY_NPM_DIR                           nostr-tools for the Nostr interop test
#   ARCHY_CHROMIUM                          the browser the page's test drives
# Without root (a developer's own machine), nothing is installed: whatever
# is already set in the environment is passed through, and the tests that
# need a missing part skip with a message (or fail when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
	bash .ci/podman-setup.sh
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		log "installing nodejs and npm"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
	fi
	# Debian's Chromium for the page's browser test (chromedp drives it).
	if ! command -v chromium >/dev/null; then
		log "installing chromium"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
	fi
	printf 'export ARCHY_CHROMIUM=%s\n' "$(command -v chromium)"
else
	log "not root: not installing Podman; using ARCHY_PODMAN_SOCKET=${ARCHY_PODMAN_SOCKET:-<unset>}"
	[ -n "${ARCHY_PODMAN_SOCKET:-}" ] && printf 'export ARCHY_PODMAN_SOCKET=%s\n' "$ARCHY_PODMAN_SOCKET"
	[ -n "${ARCHY_PODMAN_USER:-}" ] && printf 'export ARCHY_PODMAN_USER=%s\n' "$ARCHY_PODMAN_USER"
	[ -n "${ARCHY_PODMAN_SOCKET2:-}" ] && printf 'export ARCHY_PODMAN_SOCKET2=%s\n' "$ARCHY_PODMAN_SOCKET2"
	[ -n "${ARCHY_PODMAN_USER2:-}" ] && printf 'export ARCHY_PODMAN_USER2=%s\n' "$ARCHY_PODMAN_USER2"
	[ -n "${ARCHY_CHROMIUM:-}" ] && printf 'export ARCHY_CHROMIUM=%s\n' "$ARCHY_CHROMIUM"
fi

# nostr-tools (an independent Nostr implementation) and ws, pinned, into
# .cache/npm; the interop test runs them on the machine's Node.js.
npm_dir=$PWD/.cache/npm
if command -v npm >/dev/null; then
	if [ ! -f "$npm_dir/node_modules/nostr-tools/package.json" ] || [ ! -f "$npm_dir/node_modules/ws/package.json" ]; then
		log "installing nostr-tools into $npm_dir"
		mkdir -p "$npm_dir"
		(cd "$npm_dir" && npm install --no-audit --no-fund --silent nostr-tools@2.25.2 ws@8.18.3 >&2)
	fi
	printf 'export ARCHY_NPM_DIR=%s\n' "$npm_dir"
else
	log "npm not found: the nostr-tools interop test will skip (or fail in CI)"
fi
