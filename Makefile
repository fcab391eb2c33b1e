# The two set-up commands of the README. Both work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

# The tests that exercise the compiled (Numba) kernels.
KERNEL_TESTS := tests/test_conv_implicit.py tests/test_correlate_rows.py \
	tests/test_depthwise_rows.py tests/test_depthwise_phases.py tests/test_depthwise_lanes.py \
	tests/test_compiled_kernels.py \
	tests/test_conv_algorithms.py \
	tests/test_signal.py tests/test_conv_hypothesis.py tests/test_transpose.py tests/test_conv_fused_passes.py \
	tests/test_ieee.py tests/test_vector_math.py tests/test_arithmetic_numba.py \
	tests/test_planar_images.py tests/test_weight_rows.py tests/test_conv_sliding.py \
	tests/test_window_fold.py

.PHONY: train test test-targets data

# Install cnnkit and Fashion-MNIST, train the default CNN, print its test accuracy.
train: data
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m cnnkit train

# Install cnnkit with its test extra (PyTorch and SciPy as oracles, Playwright) and run the test
# suite. The explorer's browser tests drive Debian's Chromium (no browser download): installed
# here when missing and apt-get is available; without it those tests are skipped.
# Two test processes share the cores: one BLAS and OpenMP thread each, and two Numba threads
# each, so that the kernels' tasks split over several threads are tested on any machine
# (NUMBA_NUM_THREADS set, since cnnkit otherwise gives Numba OMP_NUM_THREADS' count).
TEST_THREADS = OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=2

test: data
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; fi
	$(PYTHON) -m pip install -q -e '.[test]'
	$(TEST_THREADS) $(PYTHON) -m pytest -q -n 2 -p no:cacheprovider tests
	@$(MAKE) --no-print-directory test-targets

# The kernel tests again, compiled for each narrower target the host can run (AVX2, then
# 128-bit SSE on x86-64; 'generic' elsewhere: python -m cnnkit.bench.isa names them), since
# register tiles and vector widths chosen per ISA are only tested where they are compiled.
# NUMBA_CPU_NAME alone: cnnkit then compiles for that CPU's own features (cnnkit/cpu.py).
# Each pass compiles every kernel again (Numba's cache is per target): about 130 s of CPU.
test-targets:
	@targets="$$($(PYTHON) -m cnnkit.bench.isa)" || exit 1; for target in $$targets; do \
	  NUMBA_CPU_NAME=$$target $(PYTHON) -c \
	    "import cnnkit.cpu; print('kernel tests compiled for', cnnkit.cpu.host().summary())"; \
	  NUMBA_CPU_NAME=$$target $(TEST_THREADS) \
	    $(PYTHON) -m pytest -q -n 2 -p no:cacheprovider $(KERNEL_TESTS) || exit 1; \
	done

# Fashion-MNIST from Debian's dataset-fashion-mnist package, where apt is available.
data:
	@if [ -d "$(FASHION_MNIST)" ] || [ -n "$$CNNKIT_DATA" ]; then :; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else echo "Fashion-MNIST not found: put the four IDX files in a folder and set CNNKIT_DATA"; fi
