# A thin layer over meson for the two commands of the README.
#   make          build build/berthd and build/berth (optimised, no sanitizers)
#   make dev      install what is missing, build, run `berthd --dev` with a demo site
#   make test     install what is missing, build with ASan+UBSan, run every test
#   make fuzz     build the libFuzzer targets (clang) into build-fuzz/
#   make bench    run the benchmarks in bench/ beside nginx and H2O

BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
MESON      ?= meson

.PHONY: all dev test bootstrap fuzz bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=release -Dtests=false

bootstrap:
	./scripts/bootstrap.sh

dev: bootstrap all
	./$(BUILD)/berthd --dev

test: bootstrap
	./scripts/run-tests.sh

fuzz: bootstrap
	@test -f $(FUZZ_BUILD)/build.ninja || CC=clang $(MESON) setup $(FUZZ_BUILD) -Dfuzzing=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(FUZZ_BUILD)

bench:
	./scripts/bootstrap.sh --bench
	./bench/run-all.sh

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
