#!/bin/sh
# Builds the OCI archives of every sample app (offline, deterministic) into
# examples/apps/<id>/[update/|broken/]images/, and makes the example key 0600.
# Needs Go and /bin/busybox (Debian: apt-get install busybox-static).
# Usage: examples/build-images.sh [-json] [APP...]
set -eu
cd "$(dirname "$0")/.."
exec go run ./examples/build "$@"
