# The course's two commands:  make lab   (open the course)   make test   (run every test)
# Both create .venv from requirements.txt on the first run and skip that on later runs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KERNEL := compresskit

.PHONY: lab test test-fast test-ui bench datasets clean-venv strip help

help:
	@echo "make lab     set up .venv (first run only) and open the course in JupyterLab"
	@echo "make test    set up .venv (first run only) and run every test, notebooks included"
	@echo "make bench   measure the benchmarks and write benchmarks/RESULTS.md"

# The environment: rebuilt only when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "compresskit needs Python 3.11 or newer; got " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (compresskit)"
	touch $(STAMP)

# Opens on chapters/; the course asks nothing of the network (no news, update or extension checks).
LAB_FLAGS := --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/chapters \
	--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	--LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS)

# Every test runs with the network cut off (loopback only): see tests/offline.sh.
test: $(STAMP)
	bash tests/offline.sh $(PY) -m pytest $(PYTEST_ARGS)

# Unit tests only, for a quick loop while editing the library.
test-fast: $(STAMP)
	bash tests/offline.sh $(PY) -m pytest tests -m "not ui" $(PYTEST_ARGS)

# The browser tests only (JupyterLab + headless Chromium): every chapter as a learner runs it.
test-ui: $(STAMP)
	bash tests/offline.sh $(PY) -m pytest tests/ui $(PYTEST_ARGS)

bench: $(STAMP)
	bash tests/offline.sh $(PY) -m benchmarks

datasets: $(STAMP)
	$(PY) datasets/build.py

# Remove outputs and execution counts from every notebook before committing.
strip: $(STAMP)
	$(PY) -m compresskit.course.strip chapters/*.ipynb solutions/*.ipynb

clean-venv:
	rm -rf $(VENV)
