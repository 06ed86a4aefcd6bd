#!/usr/bin/env bash
# .ci/podman-setup.sh: install, configure and start rootless Podman for
# archy's tests on a fresh Debian 12 machine. Run as root; idempotent (a
# second run changes nothing and reuses a service that already answers).
#
# It prints, on stdout and nothing else, the environment the tests need:
#
#     eval "$(bash .ci/podman-setup.sh)"
#
# exports ARCHY_PODMAN_SOCKET (unix:// URL of the rootless API socket) and
# ARCHY_PODMAN_USER (the unprivileged user that owns it), and the same for a
# second user, ARCHY_PODMAN_SOCKET2 and ARCHY_PODMAN_USER2 (archy2): the
# end-to-end test (make e2e) runs two nodes that install apps as two
# different users, each with its own rootless Podman, as two machines
# would. The two users' subordinate ID ranges must not overlap (checked).
# Progress and errors go to stderr.
#
# How `make test`, run by root, reaches the rootless socket (the choice):
#
#   Nodes run as an unprivileged user talking to that user's own Podman
#   socket; root only installs packages. The tests do the same. A rootless
#   container's root is the socket owner's UID on the host (other container
#   UIDs map into the owner's subuid range), so a data folder that a test
#   bind-mounts must be owned by that user (or by the mapped IDs Podman
#   reports), not by root, and a root-owned 0700 t.TempDir() is not even
#   reachable from the container. So the Go test process of every package
#   that talks to Podman runs AS the archy user: such packages call
#   internal/podmantest.Main from TestMain, which, when the process is root
#   and ARCHY_PODMAN_USER is set, copies the test binary to a folder that
#   user can read and re-executes it with that user's UID/GID, HOME and
#   XDG_RUNTIME_DIR, forwarding signals and the exit code. `go test` still
#   builds as root with root's caches; packages that do not talk to Podman
#   are not affected. Run without ARCHY_PODMAN_USER (a developer already
#   logged in as the socket's owner) nothing is re-executed.
#
#   Tests that need Podman skip with a message naming this script when
#   ARCHY_PODMAN_SOCKET is unset, except when CI=true: then they fail.
set -euo pipefail
# The service and every command run as the user start from /: the caller's
# folder may be one the user cannot enter (a checkout in root's home), and
# Podman gives up when it cannot chdir back into it.
cd /

user=${ARCHY_PODMAN_USER:-archy}
user2=${ARCHY_PODMAN_USER2:-archy2}
log() { printf 'podman-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "run me as root (I install packages and create the users $user and $user2)"
	exit 1
fi

# 1. Packages. Debian 12 ships Podman 4.3.1.
pkgs=(podman runc busybox-static uidmap slirp4netns)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# 2. Engine settings these machines need: crun fails on the hybrid cgroup
# layout (use runc), and Podman's default ulimits exceed the sandbox's hard
# limit. The global file applies to rootless users too.
conf=/etc/containers/containers.conf
want='# written by archy .ci/podman-setup.sh
[containers]
default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]

[engine]
runtime = "runc"
'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$(printf '%s' "$want")" ]; then
	log "writing $conf"
	mkdir -p /etc/containers
	printf '%s' "$want" >"$conf"
fi

# 4. slirp4netns publishes ports through /dev/net/tun, 0600 here.
if [ ! -c /dev/net/tun ]; then
	mkdir -p /dev/net
	mknod /dev/net/tun c 10 200
fi
chmod 0666 /dev/net/tun

# setup_user USER RANGE: steps 3 to 6 for one user (RANGE: the
# subordinate IDs it gets if it has none); sets url to its socket's URL.
# The user's variables are global: as_user and answers read them.
setup_user() {
	user=$1 range=$2
	# 3. The unprivileged user with subordinate ID ranges.
	if ! id -u "$user" >/dev/null 2>&1; then
		log "creating user $user"
		# No automatic range: this script gives each user its own.
		useradd -m -s /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$user"
	fi
	uid=$(id -u "$user")
	gid=$(id -g "$user")
	home=$(getent passwd "$user" | cut -d: -f6)
	if ! grep -q "^$user:" /etc/subuid; then
		log "adding subuids for $user"
		usermod --add-subuids "$range" "$user"
	fi
	if ! grep -q "^$user:" /etc/subgid; then
		log "adding subgids for $user"
		usermod --add-subgids "$range" "$user"
	fi

	# 5. The user's runtime folder (no systemd-logind here to make it).
	run_dir=/run/user/$uid
	install -d -m 0700 -o "$uid" -g "$gid" "$run_dir"
	install -d -m 0700 -o "$uid" -g "$gid" "$run_dir/podman"
	sock=$run_dir/podman/podman.sock
	url=unix://$sock

	# setpriv execs in place (runuser would stay as a parent and stop itself
	# whenever the service is stopped).
	as_user() {
		setpriv --reuid="$uid" --regid="$gid" --init-groups \
			env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME="$home" USER="$user" LOGNAME="$user" XDG_RUNTIME_DIR="$run_dir" "$@"
	}
	# The podman CLI takes seconds to start on a loaded machine: allow 30 s.
	answers() { as_user timeout 30 podman --url "$url" version >/dev/null 2>&1; }
	pidfile=$run_dir/podman/service.pid

	# 6. The rootless API service, in the background, in a session of its own:
	# its process group id (written to $pidfile) names the service and the
	# child that rootless Podman re-executes inside its user namespace, so
	# that a test or this script can stop, continue or end exactly those.
	if answers; then
		log "service already answers on $url"
	else
		if [ -s "$pidfile" ]; then
			old=$(cat "$pidfile")
			# A service that does not answer (stopped, hung): end that
			# process group by its id, not by name.
			if kill -0 -- "-$old" 2>/dev/null; then
				log "ending unresponsive service (process group $old)"
				kill -CONT -- "-$old" 2>/dev/null || true
				kill -- "-$old" 2>/dev/null || true
			fi
		fi
		rm -f "$sock" "$pidfile"
		log "starting podman system service on $url"
		setsid -f setpriv --reuid="$uid" --regid="$gid" --init-groups \
			env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME="$home" USER="$user" LOGNAME="$user" XDG_RUNTIME_DIR="$run_dir" \
			sh -c 'echo $$ >"$1"; exec podman system service --time=0 "$2"' sh "$pidfile" "$url" \
			</dev/null >>"$run_dir/podman/service.log" 2>&1
		# Poll the socket: nothing signals readiness, so wait up to 90 s.
		for _ in $(seq 1 90); do
			if answers; then break; fi
			sleep 1
		done
		if ! answers; then
			log "service did not answer in 90 s; its log:"
			tail -n 50 "$run_dir/podman/service.log" >&2 || true
			exit 1
		fi
	fi
	log "$(as_user podman --url "$url" version --format 'server {{.Server.Version}} API {{.Server.APIVersion}}, client {{.Client.Version}}')"
}

# overlap A B: fails when a subordinate ID range of user A meets one of
# user B (in /etc/subuid or in /etc/subgid).
overlap() {
	local f s1 c1 s2 c2
	for f in /etc/subuid /etc/subgid; do
		while read -r s1 c1; do
			while read -r s2 c2; do
				if [ "$s1" -lt $((s2 + c2)) ] && [ "$s2" -lt $((s1 + c1)) ]; then
					log "$f: the IDs of $1 ($s1+$c1) overlap those of $2 ($s2+$c2): give one of them another range"
					return 1
				fi
			done < <(awk -F: -v u="$2" '$1 == u { print $2, $3 }' "$f")
		done < <(awk -F: -v u="$1" '$1 == u { print $2, $3 }' "$f")
	done
}

user1=$user
setup_user "$user1" 200000-265535
url1=$url
setup_user "$user2" 300000-365535
url2=$url
overlap "$user1" "$user2"

printf 'export ARCHY_PODMAN_SOCKET=%s\n' "$url1"
printf 'export ARCHY_PODMAN_USER=%s\n' "$user1"
printf 'export ARCHY_PODMAN_SOCKET2=%s\n' "$url2"
printf 'export ARCHY_PODMAN_USER2=%s\n' "$user2"
