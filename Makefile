# Two commands for a fresh machine: `make run` and `make test`. Both set up .venv once (a stamp file
# records it; it is redone when pyproject.toml or this Makefile change), then take seconds.
#
# TORCH_SPEC: the torch requirement installed before everything else. The default pins the CPU wheel;
# on a CUDA machine use e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hf_sqa-installed
PYTEST_ARGS ?=

.PHONY: setup run test bench examples demo browser clean student

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	# distillmos declares torchaudio, which would replace torch with a multi-GB CUDA build: no deps
	$(BIN)/python -m pip install -q --no-deps distillmos xls-r-sqa
	@touch $@

setup: $(STAMP)

# the main job: score the example clips with the default model (Distill-MOS import) and print a table
run: $(STAMP)
	$(BIN)/hf-sqa score examples/

# headless chromium + its driver for the Space's browser test (Debian packages; needs root or sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the Gradio Space on http://127.0.0.1:7860
demo: $(STAMP)
	$(BIN)/python spaces_demo/app.py

bench: $(STAMP)
	$(BIN)/python benchmarks/score_speed.py --breakdown

# the fast student end to end: clean speech -> degradation -> teacher labels -> training -> evaluation -> card
# (resumable: run it again after a kill; needs espeak-ng, ffmpeg, Debian's Asterisk prompts and its recorded
# words of KLettres and KTuberling, installed here)
student: $(STAMP)
	@command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null && dpkg -s asterisk-core-sounds-ru-g722 \
	  klettres-data ktuberling-data >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO \
	  apt-get install -y -q espeak-ng ffmpeg $(foreach l,en es fr it ru,asterisk-core-sounds-$(l)-g722) \
	  klettres-data ktuberling-data; }
	$(BIN)/python training_scripts/make_student.py $(STUDENT_ARGS)

# regenerate examples/ (needs espeak-ng)
examples: $(STAMP)
	$(BIN)/python examples/make_examples.py

clean:
	rm -rf $(VENV) build *.egg-info
