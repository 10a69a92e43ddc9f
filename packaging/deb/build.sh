#!/usr/bin/env bash
# make deb: target/pkg/fdfs_$VERSION_amd64.deb from target/static/fdfs (make static), with
# dpkg-deb: `make install` into a staging tree (PREFIX=/usr, units in /lib/systemd/system as
# Debian 12 wants), the docs Debian requires, and DEBIAN/ (control, conffiles, maintainer
# scripts, md5sums). A native package: its version is Cargo.toml's.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${VERSION:?VERSION (Cargo.toml version) not set}"
: "${MAINTAINER:?MAINTAINER (Name <address>) not set}"
out=target/pkg
stage=$out/deb
deb=$out/fdfs_${VERSION}_amd64.deb
# Reproducible: file times and the changelog date from the last commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr UNITDIR=/lib/systemd/system \
	FDFS_BIN=target/static/fdfs MAN_GZ=1 >/dev/null

doc=$stage/usr/share/doc/fdfs
install -d "$doc"
install -m 0644 packaging/copyright "$doc/copyright"
date=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
sed -e "s/@VERSION@/$VERSION/" -e "s/@MAINTAINER@/$MAINTAINER/" -e "s/@DATE@/$date/" \
	packaging/changelog | gzip -9n >"$doc/changelog.gz"

install -d "$stage/usr/share/lintian/overrides"
install -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/fdfs"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@MAINTAINER@/$MAINTAINER/" -e "s/@INSTALLED_SIZE@/$size/" \
	packaging/deb/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find etc -type f | sort | sed 's#^#/#') >"$stage/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
	xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "deb: $deb"
