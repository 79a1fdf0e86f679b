# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: demo test test-postgres install node-deps vendor-govuk-frontend bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[demo,test]'
	touch $@

install: $(VENV)/.installed

# The real-peer tests drive node's openid-client and axe-core; without npm they skip (and fail under CI=true).
node-deps:
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the openid-client and accessibility tests will skip"; fi

demo: $(VENV)/.installed
	$(PY) -m demo.run

test: $(VENV)/.installed node-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The same suite on PostgreSQL (this machine runs one on 127.0.0.1:5432 with trust auth).
test-postgres: $(VENV)/.installed node-deps
	SUPERCLOUD_TEST_DATABASE_URL=$${SUPERCLOUD_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(VENV)/.installed
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

vendor-govuk-frontend:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent govuk-frontend@6.3.0 && tar xzf govuk-frontend-6.3.0.tgz && \
		cp package/dist/govuk/govuk-frontend.min.css package/dist/govuk/govuk-frontend.min.js $(CURDIR)/broker/web/static/govuk-frontend/

clean:
	rm -rf $(VENV) var .pytest_cache
