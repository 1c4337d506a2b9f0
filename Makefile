# The course's two commands:  make lab   (open the course)   make test   (run every test)
# Both create .venv from requirements.txt on the first run and skip that on later runs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KERNEL := compresskit

# Where pip looks for torch besides PyPI. On Linux, PyPI's torch is a CUDA build with several GB
# of GPU libraries the course never uses, so the default is PyTorch's CPU wheel index; elsewhere
# (macOS, Windows) PyPI's torch is already a CPU build. Override it once, on a clean .venv:
#   make clean-venv && make lab TORCH_INDEX=https://download.pytorch.org/whl/cu128   # a CUDA 12.8 build
#   make clean-venv && make lab TORCH_INDEX=                                         # PyPI only
ifeq ($(shell uname -s 2>/dev/null),Linux)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
else
TORCH_INDEX ?=
endif
TORCH_PIP_ARGS := $(if $(strip $(TORCH_INDEX)),--extra-index-url $(strip $(TORCH_INDEX)))
# The torch release `make lock` pins (requirements.txt).
TORCH_VERSION ?= 2.13.0
# Scratch environments, outside the repository.
SCRATCH     ?= $(or $(TMPDIR),/tmp)
LOCK_VENV   ?= $(SCRATCH)/compresskit-lock
LOWEST_VENV ?= $(SCRATCH)/compresskit-lowest

.PHONY: lab test test-fast test-ui test-lowest bench book datasets clean-venv strip lock hub help

help:
	@echo "make lab     set up .venv (first run only) and open the course in JupyterLab"
	@echo "make test    set up .venv (first run only) and run every test, notebooks included"
	@echo "make bench   measure the benchmarks and write benchmarks/RESULTS.md"
	@echo "make hub     a JupyterHub for a workshop on this machine (set COMPRESSKIT_HUB_PASSWORD first)"
	@echo "make book    the course as a static site with slides, offline: build/book/html/index.html"
	@echo "make lock    regenerate requirements.txt from pyproject.toml (pip-compile)"
	@echo "make test-lowest  unit tests with the lowest numpy, scikit-learn and matplotlib allowed"

# The environment: rebuilt only when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "compresskit needs Python 3.11 or newer; got " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (compresskit)"
	touch $(STAMP)

# configurable-http-proxy, the proxy in front of `make hub`, from npm at the version in
# classroom/package-lock.json, into classroom/node_modules. npm needs the network, so this runs at
# set-up, outside tests/offline.sh. Without npm (or if npm fails) it says so and goes on: the hub
# tests are then skipped (failed under CI=true) and `make hub` says what to install.
PROXY_STAMP := classroom/node_modules/.installed
$(PROXY_STAMP): classroom/package.json classroom/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: configurable-http-proxy not installed (make hub needs it; the hub tests will be skipped)." \
	       "Install Node.js and npm (sudo apt-get install nodejs npm)"; \
	elif (cd classroom && npm ci --no-audit --no-fund --loglevel=error); then \
	  touch $@; \
	else \
	  echo "npm ci in classroom/ failed: configurable-http-proxy not installed (make hub needs it)"; \
	fi

# Opens on chapters/; the course asks nothing of the network (no news, update or extension checks).
LAB_FLAGS := --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/chapters \
	--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	--LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS)

# Every test runs with the network cut off (loopback only): see tests/offline.sh.
test: $(STAMP) $(PROXY_STAMP)
	bash tests/offline.sh $(PY) -m pytest $(PYTEST_ARGS)

# Unit tests only, for a quick loop while editing the library.
test-fast: $(STAMP) $(PROXY_STAMP)
	bash tests/offline.sh $(PY) -m pytest tests -m "not ui and not book" $(PYTEST_ARGS)

# The browser tests only (JupyterLab + headless Chromium): every chapter as a learner runs it.
test-ui: $(STAMP)
	bash tests/offline.sh $(PY) -m pytest tests/ui $(PYTEST_ARGS)

# The course as a static site (book/build.py): every chapter and solution executed, with search, and slides
# in build/book/html/slides/. It takes the runs `make test` leaves in build/executed/ and executes only a
# notebook that is missing there or changed since; tests/test_book.py (in `make test`) builds and checks it.
# BOOK_ARGS="--only 01_concepts,02_pruning" builds a few chapters. Open build/book/html/index.html.
book: $(STAMP)
	bash tests/offline.sh $(PY) -m book.build $(BOOK_ARGS)

# The notebooks it runs call the exercise checkers on stubs: that is not the developer's progress.
bench: $(STAMP)
	COMPRESSKIT_PROGRESS=off bash tests/offline.sh $(PY) -m benchmarks

# A JupyterHub for a workshop: classroom/jupyterhub_config.py, state in $$COMPRESSKIT_HUB_DIR
# (default ~/compresskit-hub), on 127.0.0.1:8000 until Ctrl-C. It refuses to start without
# COMPRESSKIT_HUB_PASSWORD (or _PASSWORD_FILE, or _TOKENS_FILE). README: "Run it in a classroom".
hub: $(STAMP) $(PROXY_STAMP)
	$(PY) -m classroom.hub $(HUB_ARGS)

# build_lm.py trains the language models (about 10 minutes on 2 cores) and fails if a rebuild's test
# perplexity is not within 3% of the committed datasets/tiny_lm.json (weights differ across CPUs).
datasets: $(STAMP)
	$(PY) datasets/build.py
	$(PY) datasets/build_lm.py

# Remove outputs, execution counts and run metadata from every notebook before committing (nbstripout).
strip: $(STAMP)
	$(PY) -m compresskit.course.strip chapters/*.ipynb solutions/*.ipynb

# requirements.txt is generated, never edited: pip-compile (pip-tools, in a scratch venv) resolves
# pyproject.toml's extras with torch==$(TORCH_VERSION). Run `make test` after it, then commit both files.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install --quiet "pip-tools>=7.4"; }
	$(PYTHON) tools/lock.py --pip-compile $(LOCK_VENV)/bin/pip-compile --torch $(TORCH_VERSION) --index "$(strip $(TORCH_INDEX))"

# The lower bounds in pyproject.toml, tested: a scratch venv with the lowest numpy, scikit-learn and
# matplotlib allowed and the pinned torch runs the unit tests. Slow (a fresh install); not in `make test`.
test-lowest:
	PYTHON=$(PYTHON) LOWEST_VENV=$(LOWEST_VENV) TORCH_INDEX="$(strip $(TORCH_INDEX))" bash tools/test_lowest.sh $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
