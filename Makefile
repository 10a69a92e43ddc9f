# fdfs: FastDFS in one binary.
#   make run    build and start a tracker + storage with built-in defaults (data in ./fdfs-data)
#   make test   unit tests + integration tests (sets up a Python venv for the py3fdfsv2 client)
#   make fuzz   the decoders' property tests with many more cases (FUZZ_CASES, default 100000)
#   make bench  performance table against an all-in-one server, then fdfs against C FastDFS
#               (upstream fdfs_bench, same run) when ../shared/ref is there (BENCH_SECS per row, default 5)
#   make static         target/static/fdfs: one fully static, stripped x86_64 binary (musl)
#   make install        binary, man pages, configs (kept if present), systemd units, sysusers.d,
#                       logrotate and fdfs-setup under DESTDIR/PREFIX (default /usr/local)
#   make deb / rpm      target/pkg/fdfs_VERSION_amd64.deb / fdfs-VERSION-1.x86_64.rpm (static binary)
#   make package-test   build both packages, check them, install the .deb and run it (root)

CARGO ?= cargo
FDFS_VENV ?= $(CURDIR)/target/pyvenv
export FDFS_VENV

.PHONY: all build release run test bench fuzz pyenv clean static install uninstall deb rpm package-test

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

run: release
	./target/release/fdfs server --dir ./fdfs-data --log-stderr

pyenv:
	bash scripts/pyenv.sh

test: pyenv
	@ref="$${FDFS_REF_DIR:-../shared/ref}"; if [ -x "$$ref/bin/fdfs_trackerd" ]; then \
		echo "interop tests: upstream C FastDFS from $$ref"; \
	else \
		echo "WARNING: upstream C FastDFS not found at $$ref (set FDFS_REF_DIR): the interop tests will be SKIPPED"; \
	fi
	$(CARGO) test --all-targets

bench: release
	bash scripts/bench.sh

# The decoders' property tests (src/*/props.rs) with many more cases than in
# `make test`: FUZZ_CASES per property (default 100000), optimised build.
FUZZ_CASES ?= 100000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --bin fdfs props::

clean:
	$(CARGO) clean

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# One static binary, stripped (scripts/static.sh: musl, or static glibc where the musl
# target cannot be installed).
STATIC_BIN := target/static/fdfs
static:
	CARGO="$(CARGO)" bash scripts/static.sh $(STATIC_BIN)

# make install: for people who build from source (`make release && sudo make install`), and
# the packages' staging (PREFIX=/usr, FDFS_BIN=$(STATIC_BIN), MAN_GZ=1). Configs under
# SYSCONFDIR/fdfs are installed only where none is yet; then run LIBEXECDIR/fdfs/fdfs-setup
# (the user fdfs, /var/lib/fdfs, /var/log/fdfs).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
LIBEXECDIR ?= $(PREFIX)/libexec
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
FDFS_BIN ?= target/release/fdfs
MAN_GZ ?= 0
MAN1 := man/fdfs.1
MAN5 := man/fdfs.conf.5
MAN8 := man/fdfs-tracker.8 man/fdfs-storage.8 man/fdfs-server.8
CONFS := tracker.conf storage.conf client.conf storage_ids.conf

target/release/fdfs:
	$(CARGO) build --release

install: $(FDFS_BIN)
	install -D -m 0755 $(FDFS_BIN) $(DESTDIR)$(BINDIR)/fdfs
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	if [ "$(MAN_GZ)" = 1 ]; then \
		gzip -9nf $(DESTDIR)$(MANDIR)/man1/fdfs.1 $(DESTDIR)$(MANDIR)/man5/fdfs.conf.5 \
			$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))); \
	fi
	install -d $(DESTDIR)$(SYSCONFDIR)/fdfs
	for f in $(CONFS); do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/fdfs/$$f ]; then \
			echo "keeping $(DESTDIR)$(SYSCONFDIR)/fdfs/$$f (the new one is packaging/conf/$$f)"; \
		else \
			install -m 0644 packaging/conf/$$f $(DESTDIR)$(SYSCONFDIR)/fdfs/$$f; \
		fi; \
	done
	install -D -m 0644 packaging/logrotate/fdfs $(DESTDIR)$(SYSCONFDIR)/logrotate.d/fdfs
	install -d $(DESTDIR)$(UNITDIR)
	for u in fdfs-tracker.service fdfs-storage.service; do \
		sed 's#@BINDIR@#$(BINDIR)#g' packaging/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -D -m 0644 packaging/sysusers/fdfs.conf $(DESTDIR)$(SYSUSERSDIR)/fdfs.conf
	install -d $(DESTDIR)$(LIBEXECDIR)/fdfs
	sed 's#@SYSUSERSDIR@#$(SYSUSERSDIR)#g' packaging/fdfs-setup > $(DESTDIR)$(LIBEXECDIR)/fdfs/fdfs-setup
	chmod 0755 $(DESTDIR)$(LIBEXECDIR)/fdfs/fdfs-setup

# Removes what install put there, except the configs and the data (/var/lib/fdfs, /var/log/fdfs).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fdfs $(DESTDIR)$(LIBEXECDIR)/fdfs/fdfs-setup
	rm -f $(DESTDIR)$(MANDIR)/man1/fdfs.1* $(DESTDIR)$(MANDIR)/man5/fdfs.conf.5*
	rm -f $(addsuffix *,$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))))
	rm -f $(DESTDIR)$(UNITDIR)/fdfs-tracker.service $(DESTDIR)$(UNITDIR)/fdfs-storage.service
	rm -f $(DESTDIR)$(SYSUSERSDIR)/fdfs.conf $(DESTDIR)$(SYSCONFDIR)/logrotate.d/fdfs
	-rmdir $(DESTDIR)$(LIBEXECDIR)/fdfs

# Packages of the static binary, in target/pkg/.
PKG_MAINTAINER ?= fdfs maintainers <fdfs@example.org>
deb: static
	VERSION=$(VERSION) MAINTAINER="$(PKG_MAINTAINER)" bash packaging/deb/build.sh

rpm: static
	@command -v rpmbuild >/dev/null || { echo "make rpm: rpmbuild not found (apt-get install rpm, dnf install rpm-build)"; exit 1; }
	rm -rf target/pkg/rpmbuild
	rpmbuild -bb packaging/rpm/fdfs.spec \
		--define "_topdir $(CURDIR)/target/pkg/rpmbuild" \
		--define "_rpmdir $(CURDIR)/target/pkg" \
		--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
		--define "fdfs_version $(VERSION)" \
		--define "fdfs_srcdir $(CURDIR)" \
		--define "packager $(PKG_MAINTAINER)"
	@ls -l target/pkg/fdfs-$(VERSION)-1.x86_64.rpm

# Builds both packages, checks their contents, man pages and units, then installs the .deb,
# runs the daemons from its units' command lines as the user fdfs, rotates the logs and removes
# it. Root and Debian (it apt-gets its tools); prints SKIPPED with the reason otherwise.
package-test:
	bash packaging/test.sh
