# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := tests/interop/node

.PHONY: run test lint docs venv chromium redis clean bench uvicorn-suite uvicorn-tests

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamp records that the installed set matches pyproject.toml.
$(VENV)/.installed: pyproject.toml setup.py src/wsio/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml setup.py src/wsio/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench,redis]'
	touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json
	cd $(NODE_DIR) && npm install --no-audit --no-fund --silent
	touch $@

venv: $(VENV)/.installed

# The browser test needs Debian's Chromium. Install it when missing and the machine allows
# it (root with apt); otherwise that test is skipped and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
	      || echo "chromium could not be installed: the browser test will be skipped" >&2; \
	  else \
	    echo "chromium is missing and this user can't install it: the browser test will be skipped" >&2; \
	  fi; }

# The tests of the Redis-backed pieces run a private redis-server (tests/redisserver.py) on a
# free loopback port, never a system instance. Install Debian's package when missing and the
# machine allows it (root with apt); otherwise those tests are skipped and say why. The
# package may start a system service on port 6379: harmless, the tests don't use it.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
	      || echo "redis-server could not be installed: the tests needing Redis will be skipped" >&2; \
	  else \
	    echo "redis-server is missing and this user can't install it: the tests needing Redis will be skipped" >&2; \
	  fi; }

# uvicorn's own WebSocket tests: tests/protocols/test_websocket.py from uvicorn's source
# distribution, the installed version, fetched with pip and extracted under .venv/ (never into
# the repo), with our conftest installed beside the test file. It adds wsio.asgi's class to the
# file's WebSocket backends; the file runs each against both of uvicorn's HTTP protocols.
UVICORN_SUITE := $(VENV)/uvicorn-suite
UVICORN_TREE := $(UVICORN_SUITE)/tree
UVICORN_CONFTEST := tests/asgi/uvicorn_suite/protocols_conftest.py

$(UVICORN_SUITE)/.fetched: $(VENV)/.installed
	rm -rf $(UVICORN_SUITE)
	mkdir -p $(UVICORN_SUITE)/sdist $(UVICORN_TREE)
	version=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("uvicorn"))') \
	  && $(BIN)/python -m pip download --quiet --no-deps --no-binary :all: \
	       --dest $(UVICORN_SUITE)/sdist "uvicorn==$$version" \
	  && tar -xzf $(UVICORN_SUITE)/sdist/uvicorn-$$version.tar.gz -C $(UVICORN_TREE) \
	       --strip-components=1
# The sdist's copy of the package goes, so that the tests import the installed uvicorn
# (the same version), the one wsio.asgi runs under.
	rm -rf $(UVICORN_TREE)/uvicorn
	touch $@

# A deeper conftest than uvicorn's tests/conftest.py: its ws_protocol_cls fixture wins.
$(UVICORN_TREE)/tests/protocols/conftest.py: $(UVICORN_CONFTEST) $(UVICORN_SUITE)/.fetched
	cp $< $@

uvicorn-suite: $(UVICORN_TREE)/tests/protocols/conftest.py

# Run from the extracted tree, so that uvicorn's pyproject.toml is the pytest config there,
# with its --strict-config, --strict-markers, xfail_strict and filterwarnings=error. Overridden
# only: addopts, to drop its `-n 8` (pytest-xdist, which we don't install; the rest is kept);
# pytest-asyncio's options, because this venv loads that plugin too and, with its loop scope
# unset, it warns (an error under their filterwarnings): strict mode leaves the tests, marked
# anyio, to anyio's plugin. --timeout (pytest-timeout) bounds every test: a hang fails it.
UVICORN_PYTEST := -m pytest -q -p no:cacheprovider \
  -o addopts='-rxXs --strict-config --strict-markers' \
  -o asyncio_mode=strict -o asyncio_default_fixture_loop_scope=function --timeout=30 \
  tests/protocols/test_websocket.py

# The file alone, without coverage (~75 s); ARGS passes pytest options, e.g. ARGS='-k wsio'.
uvicorn-tests: uvicorn-suite
	cd $(UVICORN_TREE) && $(CURDIR)/$(BIN)/python $(UVICORN_PYTEST) $(ARGS)

run: $(VENV)/.installed
	$(BIN)/wsio serve --host 127.0.0.1 --port 8765

# The documentation site, from docs/ (Markdown pages, the API reference from the
# docstrings), into build/docs/; any warning fails the build.
docs: $(VENV)/.installed
	$(BIN)/sphinx-build -q -W --keep-going -b html docs build/docs

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests examples
	$(BIN)/mypy

# The suite runs under coverage (branches, subprocesses included); the report fails below
# the threshold set in pyproject.toml. It runs twice, both passes under the same combined
# coverage data: first whole with the C accelerator (wsio._speedups; tests/protocol/
# test_speedups.py fails if it wasn't built), then with WSIO_NO_SPEEDUPS=1 on the pure-Python
# code. The second pass runs tests/protocol and tests/conformance, which exercise the
# sans-I/O core fully, over real sockets too, and the asyncio connection's tests, for the
# pure-Python waiter of recv() on a live connection (~1.5 min); tests/asyncio/test_waiter.py
# already runs both waiters in the first pass, and the rest of tests/asyncio, the interop,
# CLI and browser tests would add minutes without reaching other replaced code. It leaves
# out the threads runs of the tests marked both_layers (marker threads_layer, see
# tests/layers.py): that layer shares the core, which the asyncio runs already cover. Then
# uvicorn's WebSocket test file (see uvicorn-suite above) runs from its tree, its coverage
# data written beside ours so that the combined report counts wsio.asgi's lines it reaches.
test: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed chromium redis lint docs uvicorn-suite
	rm -f .coverage .coverage.*
	WSIO_NO_SPEEDUPS= $(BIN)/coverage run -m pytest -q
	WSIO_NO_SPEEDUPS=1 $(BIN)/coverage run -m pytest -q -m 'not threads_layer' tests/protocol \
	  tests/conformance tests/asyncio/test_connection.py
	cd $(UVICORN_TREE) && WSIO_NO_SPEEDUPS= COVERAGE_FILE=$(CURDIR)/.coverage \
	  $(CURDIR)/$(BIN)/coverage run --rcfile=$(CURDIR)/pyproject.toml $(UVICORN_PYTEST)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules

# The side-by-side benchmark: about 31 minutes; ARGS='--quick' for about two.
# ARGS='--sections asgi' runs the ASGI section instead (wsio.asgi beside uvicorn's backends,
# about 3 minutes), which the default run leaves out.
# Its fan-out rows run a private redis-server: without one, they say so and skip it.
bench: $(VENV)/.bench-installed redis
	$(BIN)/python -m benchmarks $(ARGS)
