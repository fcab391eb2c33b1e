# The two set-up commands of the README. Both work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: train test data

# Install cnnkit and Fashion-MNIST, train the default CNN, print its test accuracy.
train: data
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m cnnkit train

# Install cnnkit with its test extra (PyTorch and SciPy as oracles, Playwright) and run the test
# suite. The explorer's browser tests drive Debian's Chromium (no browser download): installed
# here when missing and apt-get is available; without it those tests are skipped.
test: data
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; fi
	$(PYTHON) -m pip install -q -e '.[test]'
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -n 2 -p no:cacheprovider tests

# Fashion-MNIST from Debian's dataset-fashion-mnist package, where apt is available.
data:
	@if [ -d "$(FASHION_MNIST)" ] || [ -n "$$CNNKIT_DATA" ]; then :; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else echo "Fashion-MNIST not found: put the four IDX files in a folder and set CNNKIT_DATA"; fi
