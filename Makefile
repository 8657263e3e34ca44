# make demo  : set up .venv (if missing) and run the SceneMotion demo (<= 15 min on 2 CPU cores)
# make test  : set up .venv (if missing) and run the test suite
# make bench : the benchmark scripts at small settings (a few minutes on 2 CPU cores); each
#              prints its same-run ratio. Full settings: README "Benchmarks" and the docs.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BENCH_VIDEOS := runs/bench/videos

.PHONY: venv demo test study bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $@

demo: venv
	$(VPY) tools/demo.py

test: venv
	$(VPY) -m pytest -q tests

study: venv
	$(VPY) tools/study.py

bench: venv
	$(VPY) benchmarks/train_step.py --batch 2 --frames 8 --size 64 --repeats 4
	$(VPY) benchmarks/fewshot.py --episodes 200 --slow-episodes 50
	mkdir -p $(BENCH_VIDEOS)
	$(VPY) -c "import sys; sys.path.insert(0, 'benchmarks'); import gpu; gpu.make_videos('$(BENCH_VIDEOS)', 4, 3.0)"
	$(VPY) benchmarks/pipeline.py $(BENCH_VIDEOS) --repeat 2 --reference

clean:
	rm -rf runs checkpoints/_demo
