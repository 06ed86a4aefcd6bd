#!/usr/bin/env bash
# Runs one fuzz target: fuzz-one.sh GO PKG FUNC FUZZTIME.
#
# go1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" at the -fuzztime boundary when a loaded machine starves its
# workers (golang/go#75804, fixed in go1.27). That is not a finding: a real
# one writes its failing input to testdata/fuzz. Such a bare deadline
# failure is retried once; if it happens again it is reported as the known
# flake and not failed. Every other failure fails.
set -uo pipefail
go=$1 pkg=$2 fn=$3 fuzztime=$4
for try in 1 2; do
	log=$(mktemp)
	"$go" test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		rm -f "$log"
		exit 0
	fi
	if grep -q 'context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
		rm -f "$log"
		echo "fuzz $pkg $fn: bare 'context deadline exceeded' at the fuzztime boundary, no failing input (golang/go#75804); try $try of 2"
		continue
	fi
	rm -f "$log"
	exit "$rc"
done
echo "fuzz $pkg $fn: WARNING: the go1.26 coordinator flake twice in a row, no failing input found; not a finding"
exit 0
