# linkgw — the two commands:
#   make demo   one real call through the real lab, the Redis record printed
#   make test   lint, type check, unit and end-to-end tests
# Both install what they need first (Debian packages, the venv, the cached Asterisk root).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := redis-server sip-tester mmdebstrap tcpdump chromium systemd espeak-ng sox \
                fonts-noto-cjk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# labs side by side: the suite mostly waits on calls (23 minutes of test time, about 5
# of them CPU), so four labs share the 2 cores; worksteal hands a worker that finished
# early the tests another has queued. ruff and mypy run beside the tests.
PYTEST_WORKERS ?= 4
CACHE ?= $(or $(LINKGW_CACHE),$(HOME)/.cache/linkgw)
# promtool (checks the alert rules) from Debian's prometheus package, unpacked into the
# cache: installing the package would also install and start a Prometheus server
PROMTOOL := $(CACHE)/prometheus-deb/usr/bin/promtool
export LINKGW_PROMTOOL := $(PROMTOOL)

.PHONY: demo demo-one-pbx demo-workorder test setup apt venv asterisk-root lint unit e2e prompts bench bench-wire bench-agi \
        bench-soak bench-keeper fuzz clean

demo: setup          # 110 and 12345 as two PBXs joined by a trunk, 12345 told by push
	$(PY) -m gateway.lab demo --topology two-pbx

demo-one-pbx: setup  # 12345 as a phone of 110's own Asterisk
	$(PY) -m gateway.lab demo

demo-workorder: setup  # a work order from 12345 rings 110's duty phone; pressing 1 accepts it
	$(PY) -m gateway.lab demo --workorder

test: setup
	@lint_out=$$(mktemp); \
	$(MAKE) --no-print-directory lint >$$lint_out 2>&1 & lint=$$!; \
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal; tests=$$?; \
	wait $$lint; linted=$$?; cat $$lint_out; rm -f $$lint_out; \
	[ $$linted -eq 0 ] || echo "make test: ruff or mypy failed (above)"; \
	[ $$tests -eq 0 ] && [ $$linted -eq 0 ]

setup: apt venv asterisk-root $(PROMTOOL)

$(PROMTOOL):
	@mkdir -p $(CACHE) && tmp=$$(mktemp -d) && cd $$tmp && \
	  (apt-get download prometheus >/dev/null 2>&1 || \
	   ($(SUDO) apt-get update -qq && apt-get download prometheus >/dev/null 2>&1)) && \
	  dpkg -x prometheus_*.deb $(CACHE)/prometheus-deb && rm -rf $$tmp && \
	  echo "promtool: $(PROMTOOL)"

apt:
	@missing=""; \
	for c in redis-server:redis-server sipp:sip-tester mmdebstrap:mmdebstrap tcpdump:tcpdump \
	         systemd-analyze:systemd espeak-ng:espeak-ng sox:sox \
	         chromium:chromium; do \
	  command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c##*:}"; \
	done; \
	fc-list :lang=zh 2>/dev/null | grep -q "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

asterisk-root: venv apt
	$(PY) -m gateway.lab provision >/dev/null

lint: venv
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest tests/unit

e2e: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal tests/e2e

prompts: venv apt  # dialplan/sounds/linkgw/zh/*.wav from dialplan/sounds/prompts.zh.tsv
	$(PY) -m gateway.lab.prompts

bench: venv
	$(PY) -m bench

bench-wire: setup    # key -> INVITE on the wire, 1 and 20 transfers at once, both topologies
	$(PY) -m bench.wire
	$(PY) -m bench.wire --topology two-pbx

bench-agi: setup     # FastAGI CPU per session against panoramisk; memory at 1,000 sessions
	$(PY) -m bench.agi_cpu

bench-soak: setup    # CPU with 20 conferences; 1,000 transfers, nothing dropped or lost
	$(PY) -m bench.soak

bench-keeper: setup  # process mode's digit keeper: memory and CPU over 40 transfers
	$(PY) -m bench.keeper

fuzz: venv
	$(PY) -m bench.fuzz_parsers 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
