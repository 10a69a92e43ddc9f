#!/usr/bin/env bash
# make package-test: what a packager and a sysadmin would check, on Debian as root.
#  1. make static deb rpm; the binary is static and serves from an empty root (chroot).
#  2. The packages list the expected files and config files; lintian finds no error; the man
#     pages pass mandoc -T lint and render with man -l.
#  3. dpkg -i; the user fdfs and the directories exist; systemd-analyze verify takes the units.
#  4. In a private network namespace: the tracker and the storage started by their units'
#     command lines as the user fdfs (setpriv, with the units' LimitNOFILE and UMask), with the
#     shipped configs; a file uploaded and downloaded with the shipped client.conf; logrotate -f
#     and the daemons writing to the new files (SIGHUP); SIGTERM stops them cleanly.
#  5. dpkg -r, then dpkg -P: the stored file, the logs and the user stay. The .rpm installed
#     with rpm (its scriptlets run) and erased: the data stays too.
# It apt-gets the tools it needs. It prints SKIPPED and why where it cannot run (not root, not
# Debian, an fdfs installation of someone else's on this machine) and exits 0 then.
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
step() { echo "== package-test: $* ($(($(date +%s) - T0)) s)"; }
skip() {
	echo "SKIPPED: package-test: $*"
	exit 0
}
fail() {
	echo "FAILED: package-test: $*" >&2
	exit 1
}

# The namespace part (4): run by the main part below through `unshare --net`.
if [ "${1:-}" = --daemons ]; then
	exec_tracker=$2 exec_storage=$3 nofile=$4 umask_unit=$5 work=$6
	ip link set lo up
	# The units' LimitNOFILE, or the most this sandbox allows (systemd would set it as asked).
	if ! prlimit --pid $$ --nofile="$nofile:$nofile" 2>/dev/null; then
		echo "LimitNOFILE=$nofile not allowed here (hard limit $(ulimit -Hn)): the daemons get $(ulimit -Hn)"
		nofile=$(ulimit -Hn)
	fi
	# Run in the background (`as_fdfs CMD &`): the subshell becomes the daemon, so $! is its pid.
	as_fdfs() {
		umask "$umask_unit"
		# shellcheck disable=SC2086 # the units' ExecStart= lines, split into words
		exec prlimit --nofile="$nofile:$nofile" setpriv --reuid fdfs --regid fdfs --init-groups \
			--no-new-privs --inh-caps=-all --bounding-set=-all -- $1
	}
	wait_for() { # FILE TEXT SECONDS
		local i
		for ((i = 0; i < $3 * 10; i++)); do
			grep -q -- "$2" "$1" 2>/dev/null && return 0
			sleep 0.1
		done
		echo "--- $1:" && cat "$1" 2>/dev/null
		fail "no '$2' in $1 after $3 s"
	}
	show_logs() {
		for f in "$work/tracker.out" "$work/storage.out" /var/log/fdfs/*.log; do
			echo "--- $f:" && tail -n 40 "$f" 2>/dev/null
		done
	}
	tpid= spid=
	trap 'kill $tpid $spid 2>/dev/null || true' EXIT
	as_fdfs "$exec_tracker" >"$work/tracker.out" 2>&1 &
	tpid=$!
	wait_for "$work/tracker.out" "listening on" 20
	as_fdfs "$exec_storage" >"$work/storage.out" 2>&1 &
	spid=$!
	wait_for "$work/storage.out" "listening on" 120
	echo "daemons: tracker pid $tpid, storage pid $spid, as $(ps -o user= -p $tpid) and $(ps -o user= -p $spid)"
	[ "$(ps -o user= -p $tpid)" = fdfs ] && [ "$(ps -o user= -p $spid)" = fdfs ] || fail "daemons not run as fdfs"

	head -c 200000 /dev/urandom >"$work/in"
	# The tracker sends uploads only to a storage that has reported its free space: at most
	# stat_report_interval (60 s) after it joined.
	id=
	for ((i = 0; i < 300; i++)); do
		id=$(fdfs upload "$work/in" 2>"$work/upload.err") && break
		sleep 0.5
	done
	[ -n "$id" ] || { show_logs; fail "upload: $(cat "$work/upload.err")"; }
	echo "uploaded: $id"
	fdfs download "$id" "$work/out"
	cmp "$work/in" "$work/out" || fail "downloaded file differs"
	echo "$id" >"$work/id"
	stored=/var/lib/fdfs/storage/data/${id#*/M00/}
	[ -f "$stored" ] || fail "$stored not stored"
	[ "$(stat -c %U "$stored")" = fdfs ] || fail "$stored not owned by fdfs"
	for log in trackerd storaged; do
		[ -s /var/log/fdfs/$log.log ] || fail "/var/log/fdfs/$log.log empty"
		[ "$(stat -c %U /var/log/fdfs/$log.log)" = fdfs ] || fail "/var/log/fdfs/$log.log not fdfs's"
	done

	logrotate -f -s "$work/logrotate.state" /etc/logrotate.d/fdfs
	for log in trackerd storaged; do
		[ -s /var/log/fdfs/$log.log.1 ] || fail "logrotate made no /var/log/fdfs/$log.log.1"
		wait_for /var/log/fdfs/$log.log "SIGHUP: log files reopened" 10
	done
	echo "logrotate: $(cd /var/log/fdfs && echo *); the daemons write to the new files"
	id2=$(fdfs upload "$work/in")
	fdfs delete "$id2"

	kill -TERM $spid
	wait $spid || fail "storage exited $? after SIGTERM"
	kill -TERM $tpid
	wait $tpid || fail "tracker exited $? after SIGTERM"
	trap - EXIT
	for pid in tracker/data/fdfs_trackerd.pid storage/data/fdfs_storaged.pid; do
		[ ! -e /var/lib/fdfs/$pid ] || fail "/var/lib/fdfs/$pid left after a clean stop"
	done
	grep -q "storage stopped" /var/log/fdfs/storaged.log || fail "no 'storage stopped' in storaged.log"
	echo "SIGTERM: both stopped cleanly (exit 0, pid files removed)"
	exit 0
fi

[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i, a system user, chroot)"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || skip "needs Debian (dpkg, apt-get)"

step "tools"
missing=()
for tool in rpmbuild:rpm lintian:lintian mandoc:mandoc logrotate:logrotate musl-gcc:musl-tools \
	file:file man:man-db ip:iproute2 setpriv:util-linux prlimit:util-linux; do
	command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
install_pkgs() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "$@" >/dev/null; }
}
if [ ${#missing[@]} -gt 0 ]; then
	echo "apt-get install ${missing[*]}"
	install_pkgs "${missing[@]}" || fail "apt-get install ${missing[*]} failed"
fi
if ! command -v systemd-analyze >/dev/null; then
	install_pkgs systemd || echo "systemd not installable: systemd-analyze verify will be SKIPPED"
fi

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb=target/pkg/fdfs_${VERSION}_amd64.deb
rpm=target/pkg/fdfs-${VERSION}-1.x86_64.rpm
bin=target/static/fdfs

step "make static deb rpm"
make --no-print-directory static deb rpm

step "static binary"
desc=$(file -b "$bin")
echo "file: $desc"
echo "size: $(stat -c %s "$bin") bytes"
case "$desc" in *"statically linked"* | *"static-pie linked"*) ;; *) fail "$bin is not static" ;; esac
readelf -lW "$bin" | grep -q 'Requesting program interpreter' && fail "$bin has an interpreter"
readelf -dW "$bin" | grep -q NEEDED && fail "$bin needs shared libraries"
bare=$(mktemp -d)
cp "$bin" "$bare/fdfs"
head -c 100000 /dev/urandom >"$bare.in"
unshare --net bash -c '
	set -e
	ip link set lo up
	chroot "$1" /fdfs server --dir /data --subdirs 4 >"$1.out" 2>&1 &
	for i in $(seq 100); do [ "$(grep -c "listening on" "$1.out")" = 2 ] && break; sleep 0.1; done
	for i in $(seq 100); do id=$(TMPDIR=/ chroot "$1" /fdfs upload - <"$1.in") && break; sleep 0.2; done
	chroot "$1" /fdfs download "$id" - >"$1.back"
	kill -TERM %1
	wait %1
' bare "$bare" || { cat "$bare.out"; fail "fdfs server in an empty root"; }
cmp "$bare.in" "$bare.back" || fail "download in an empty root differs"
echo "empty root: $(cd "$bare" && echo *) (nothing else); fdfs server, upload and download there work"
rm -rf "$bare" "$bare".*

step "package contents"
expected_deb="/etc/fdfs/client.conf
/etc/fdfs/storage.conf
/etc/fdfs/storage_ids.conf
/etc/fdfs/tracker.conf
/etc/logrotate.d/fdfs
/lib/systemd/system/fdfs-storage.service
/lib/systemd/system/fdfs-tracker.service
/usr/bin/fdfs
/usr/lib/sysusers.d/fdfs.conf
/usr/libexec/fdfs/fdfs-setup
/usr/share/doc/fdfs/changelog.gz
/usr/share/doc/fdfs/copyright
/usr/share/lintian/overrides/fdfs
/usr/share/man/man1/fdfs.1.gz
/usr/share/man/man5/fdfs.conf.5.gz
/usr/share/man/man8/fdfs-server.8.gz
/usr/share/man/man8/fdfs-storage.8.gz
/usr/share/man/man8/fdfs-tracker.8.gz"
echo "dpkg-deb -c $deb:"
dpkg-deb -c "$deb" | tee "$deb.list"
got=$(awk '$1 !~ /^d/ {print $6}' "$deb.list" | sed 's#^\.##' | sort)
diff -u <(echo "$expected_deb") <(echo "$got") || fail "files of $deb"
ctrl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctrl"
diff -u <(grep '^/etc/' <<<"$expected_deb") "$ctrl/conffiles" || fail "conffiles of $deb"
rm -rf "$ctrl"
expected_rpm="/etc/fdfs
/etc/fdfs/client.conf
/etc/fdfs/storage.conf
/etc/fdfs/storage_ids.conf
/etc/fdfs/tracker.conf
/etc/logrotate.d/fdfs
/usr/bin/fdfs
/usr/lib/systemd/system/fdfs-storage.service
/usr/lib/systemd/system/fdfs-tracker.service
/usr/lib/sysusers.d/fdfs.conf
/usr/libexec/fdfs
/usr/libexec/fdfs/fdfs-setup
/usr/share/doc/fdfs/copyright
/usr/share/man/man1/fdfs.1.gz
/usr/share/man/man5/fdfs.conf.5.gz
/usr/share/man/man8/fdfs-server.8.gz
/usr/share/man/man8/fdfs-storage.8.gz
/usr/share/man/man8/fdfs-tracker.8.gz"
echo "rpm -qlp $rpm:"
rpm -qlp "$rpm" 2>/dev/null | tee "$rpm.list"
diff -u <(echo "$expected_rpm") <(sort "$rpm.list") || fail "files of $rpm"
echo "rpm -qcp $rpm:"
rpm -qcp "$rpm" 2>/dev/null | tee "$rpm.conf"
diff -u <(grep '^/etc/.*/' <<<"$expected_rpm") <(sort "$rpm.conf") || fail "config files of $rpm"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]' "$rpm" 2>/dev/null | grep -q '^-rwxr-xr-x root /usr/bin/fdfs$' ||
	fail "/usr/bin/fdfs in $rpm is not 0755 root"

step "lintian"
lintian --fail-on error --info "$deb" >"$deb.lintian" 2>&1 || { cat "$deb.lintian"; fail "lintian reports errors on $deb"; }
grep -v 'root privileges' "$deb.lintian" || true
echo "lintian: $(grep -c '^E:' "$deb.lintian" || true) errors, $(grep -c '^W:' "$deb.lintian" || true) warnings"

step "man pages"
for page in man/*.[158]; do
	mandoc -T lint -W error "$page" || fail "mandoc -T lint: errors in $page"
	err=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null)
	[ -z "$err" ] || fail "man -l $page: $err"
done
echo "mandoc -T lint -W warning:"
mandoc -T lint -W warning man/*.[158] || true
echo "(end of mandoc output)"

# Someone's own fdfs on this machine is left alone; what an earlier run of this test left
# (marked) is removed.
marker=/var/tmp/fdfs-package-test.owned
cleanup() {
	dpkg -P fdfs >/dev/null 2>&1 || true
	rpm -e --nodeps fdfs >/dev/null 2>&1 || true
	rm -rf /var/lib/fdfs /var/log/fdfs /etc/fdfs
	userdel fdfs >/dev/null 2>&1 || true
	groupdel fdfs >/dev/null 2>&1 || true
	rm -f "$marker"
}
if dpkg -s fdfs >/dev/null 2>&1 || [ -e /var/lib/fdfs ] || getent passwd fdfs >/dev/null; then
	[ -e "$marker" ] ||
		skip "install test: this machine has an fdfs installation (package, /var/lib/fdfs or user fdfs) that this test did not make"
	cleanup
fi
touch "$marker"
trap 'echo "(package-test: leaving the installation for a look; the next run removes it)"' ERR

step "dpkg -i"
dpkg -i "$deb"
getent passwd fdfs || fail "no user fdfs"
for d in /var/lib/fdfs/tracker /var/lib/fdfs/storage /var/log/fdfs; do
	[ "$(stat -c %U:%G "$d")" = fdfs:fdfs ] || fail "$d not fdfs:fdfs"
done
for role in tracker storage; do
	[ "$(readlink /var/lib/fdfs/$role/logs)" = /var/log/fdfs ] || fail "/var/lib/fdfs/$role/logs is no link to /var/log/fdfs"
done
dpkg-query -W -f='${Conffiles}\n' fdfs
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/fdfs-tracker.service /lib/systemd/system/fdfs-storage.service ||
		fail "systemd-analyze verify"
	echo "systemd-analyze verify: both units accepted"
	systemd-analyze security --offline=yes /lib/systemd/system/fdfs-storage.service 2>/dev/null | tail -n 1 || true
else
	echo "SKIPPED: systemd-analyze verify (systemd-analyze not available)"
fi

step "daemons as fdfs from the units' command lines"
unit() { sed -n "s/^$2=//p" "/lib/systemd/system/fdfs-$1.service"; }
work=$(mktemp -d)
chmod 0755 "$work"
unshare --net "$0" --daemons "$(unit tracker ExecStart)" "$(unit storage ExecStart)" \
	"$(unit storage LimitNOFILE)" "$(unit storage UMask)" "$work"
id=$(cat "$work/id")
stored=/var/lib/fdfs/storage/data/${id#*/M00/}

step "dpkg -r, dpkg -P"
dpkg -r fdfs
[ ! -e /usr/bin/fdfs ] || fail "/usr/bin/fdfs left after dpkg -r"
[ -f /etc/fdfs/storage.conf ] || fail "dpkg -r removed the configs"
dpkg -P fdfs
[ ! -e /etc/fdfs/storage.conf ] || fail "dpkg -P left /etc/fdfs/storage.conf"
cmp "$work/in" "$stored" || fail "$stored changed or gone after dpkg -P"
ls /var/log/fdfs/trackerd.log /var/log/fdfs/storaged.log >/dev/null || fail "logs gone after dpkg -P"
getent passwd fdfs >/dev/null || fail "user fdfs gone after dpkg -P"
echo "after dpkg -r and -P: $stored, /var/log/fdfs ($(ls /var/log/fdfs | wc -l) files) and the user fdfs are still there"

step "rpm -i, rpm -e"
if rpm -i --nodeps --force-debian "$rpm" 2>"$work/rpm.err"; then
	/usr/bin/fdfs --version
	[ "$(readlink /var/lib/fdfs/storage/logs)" = /var/log/fdfs ] || fail "rpm %post: no logs link"
	rpm -e --nodeps fdfs
	[ ! -e /usr/bin/fdfs ] || fail "/usr/bin/fdfs left after rpm -e"
	cmp "$work/in" "$stored" || fail "$stored changed or gone after rpm -e"
	echo "rpm: installed (scriptlets ran), erased; the data stays"
else
	echo "SKIPPED: rpm -i on this Debian host: $(cat "$work/rpm.err")"
fi

trap - ERR
cleanup
rm -rf "$work"
step "passed"
echo "package-test: 1 passed, 0 failed"
