# make run   set up .venv and train the default model on the built-in corpus, then print samples
# make test  set up .venv and run the test suite (CPU)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test setup clean

$(VENV)/.installed: pyproject.toml requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/makemore train --out runs/quickstart-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs
