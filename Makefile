# The two things a newcomer does, each one command that sets up first when needed:
#   make        build the default report, results/report.pdf (offline, real training runs)
#   make test   run the test suite
#   make reproduce   the seed scale of the studies whose data is here (config/reproduce.yaml),
#                    scored against the seeds' published numbers: results-reproduce/report.pdf
# Set-up is ./setup.sh (safe to run twice); it runs again only when it, the pinned
# requirements, their lock or pyproject.toml changed since it last succeeded (the stamp below).
# Anything else for Snakemake goes in SNAKEMAKE_ARGS, e.g.
#   make SNAKEMAKE_ARGS="--configfile config/smoke.yaml"
# What a config costs before anything runs (runs, optimizer steps, FLOPs, and device-hours
# from a minute or so of timed steps on this machine; bnlab/cost.py):
#   make estimate CONFIG=config/full.yaml      ESTIMATE_ARGS= for FLOPs only, without timing

VENV := .venv
STAMP := $(VENV)/.bnlab-setup-done
SNAKEMAKE_ARGS ?=
CONFIG ?= config.yaml
ESTIMATE_ARGS ?= --measure

.PHONY: report test setup partial estimate reproduce
.DEFAULT_GOAL := report

report: $(STAMP)
	$(VENV)/bin/snakemake --cores all $(SNAKEMAKE_ARGS)

reproduce: $(STAMP)
	$(VENV)/bin/snakemake --cores all --configfile config/reproduce.yaml $(SNAKEMAKE_ARGS)

# what exists so far, while a long run is still going (results/report-partial.pdf)
partial: $(STAMP)
	$(VENV)/bin/snakemake --cores all partial_report $(SNAKEMAKE_ARGS)

estimate: $(STAMP)
	$(VENV)/bin/python -m bnlab.cost --configfile $(CONFIG) $(ESTIMATE_ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

setup: $(STAMP)

$(STAMP): setup.sh requirements.txt requirements.lock pyproject.toml
	./setup.sh
	touch $@
