#!/usr/bin/env bash
# .ci/stage.sh [n]: prints the folder `make test` runs the suite from.
#
# Tests of packages that talk to Podman run as the socket's unprivileged
# owner (internal/podmantest), and read the sample apps and keys of this
# source tree by absolute path. When that user cannot enter this checkout
# (a clone in root's 0700 home, say), the tree is copied to a folder it can
# read, /var/tmp/archy-stage/<hash of this path>, and the suite runs there;
# root's home keeps its permissions. Otherwise, or when not root, or with
# the argument n (make's dry run), it prints this folder and copies nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
log() { printf 'stage: %s\n' "$*" >&2; }

user=
if [ -f .cache/test.env ]; then
	user=$(. ./.cache/test.env && printf '%s' "${ARCHY_PODMAN_USER:-}")
fi
if [ "${1:-}" = n ] || [ "$(id -u)" -ne 0 ] || [ -z "$user" ] || ! id -u "$user" >/dev/null 2>&1; then
	printf '%s\n' "$here"
	exit 0
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
can_read() {
	(cd / && setpriv --reuid="$uid" --regid="$gid" --init-groups test -r "$1/go.mod" -a -x "$1/examples/apps")
}
if can_read "$here"; then
	printf '%s\n' "$here"
	exit 0
fi

dest=/var/tmp/archy-stage/$(printf '%s' "$here" | sha256sum | cut -c1-16)
log "$user cannot enter $here: running the suite from a copy in $dest"
install -d -m 0755 /var/tmp/archy-stage
rm -rf "$dest"
install -d -m 0755 "$dest"
# Everything but build output and caches; the set-up's environment comes
# along (it names absolute paths that root, not the user, reads).
tar -C "$here" --exclude=./.cache --exclude=./bin -cf - . | tar -C "$dest" -xf -
install -d -m 0755 "$dest/.cache"
cp .cache/test.env "$dest/.cache/test.env"
find "$dest" -type d -exec chmod a+rx {} +
if ! can_read "$dest"; then
	log "$user cannot read the copy in $dest either"
	exit 1
fi
printf '%s\n' "$dest"
