# make demo : set up .venv (if missing) and run the SceneMotion demo (<= 15 min on 2 CPU cores)
# make test : set up .venv (if missing) and run the test suite
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: venv demo test study bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

demo: venv
	$(VPY) tools/demo.py

test: venv
	$(VPY) -m pytest -q tests

study: venv
	$(VPY) tools/study.py

clean:
	rm -rf runs checkpoints/_demo
