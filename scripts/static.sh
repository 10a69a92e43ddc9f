#!/usr/bin/env bash
# make static: one fully static, stripped x86_64 fdfs at $1 (default target/static/fdfs), which
# runs on any x86_64 Linux without a C library. Built for x86_64-unknown-linux-musl, whose
# target this adds with rustup when missing; the mimalloc allocator it then links (musl's own
# is slow under many threads) is C, compiled with musl-gcc from Debian's musl-tools, which this
# apt-gets when missing and run as root. Where the musl target cannot be had, it builds a
# static glibc binary instead and says so: that one needs glibc's NSS modules of its own
# version at run time to resolve host names and run_by_user.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/static/fdfs}
cargo=${CARGO:-cargo}
musl=x86_64-unknown-linux-musl

have_musl_target() {
	command -v rustup >/dev/null && rustup target list --installed | grep -qx "$musl"
}

if ! have_musl_target && command -v rustup >/dev/null; then
	echo "static: adding the Rust target $musl (rustup target add $musl)"
	rustup target add "$musl" || echo "static: rustup could not add $musl"
fi

if have_musl_target; then
	if ! command -v musl-gcc >/dev/null; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			echo "static: installing musl-tools (musl-gcc, for mimalloc's C code)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q musl-tools >/dev/null ||
				{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q musl-tools >/dev/null; }
		else
			echo "static: musl-gcc not found: install musl-tools (Debian, Ubuntu) or musl-gcc (Fedora)" >&2
			exit 1
		fi
	fi
	"$cargo" build --release --target "$musl"
	built=target/$musl/release/fdfs
else
	echo "static: WARNING: no $musl target; building a static glibc binary instead (host name" \
		"lookups and run_by_user then need glibc's NSS modules of the build's version)" >&2
	RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
		"$cargo" build --release --target x86_64-unknown-linux-gnu
	built=target/x86_64-unknown-linux-gnu/release/fdfs
fi

mkdir -p "$(dirname "$out")"
cp "$built" "$out.tmp"
strip --remove-section=.comment "$out.tmp"
mv "$out.tmp" "$out"
desc=$(file -b "$out")
case "$desc" in
*"statically linked"* | *"static-pie linked"*) ;;
*)
	echo "static: $out is not statically linked: $desc" >&2
	exit 1
	;;
esac
echo "static: $out, $(stat -c %s "$out") bytes: $desc"
