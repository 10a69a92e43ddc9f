# fdfs: FastDFS in one binary.
#   make run    build and start a tracker + storage with built-in defaults (data in ./fdfs-data)
#   make test   unit tests + integration tests (sets up a Python venv for the py3fdfsv2 client)
#   make fuzz   the decoders' property tests with many more cases (FUZZ_CASES, default 100000)
#   make bench  performance table against an all-in-one server, then fdfs against C FastDFS
#               (upstream fdfs_bench, same run) when ../shared/ref is there (BENCH_SECS per row, default 5)

CARGO ?= cargo
FDFS_VENV ?= $(CURDIR)/target/pyvenv
export FDFS_VENV

.PHONY: all build release run test bench fuzz pyenv clean

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
