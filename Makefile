# Everything runs inside .venv, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-pg test-dates lint fuzz bench bench-smoke clean venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# demo/, tests/ and bench/ are not installed: the repository root on the venv's path
	# makes them import from anywhere in it.
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "livcr-source-checkout.pth").write_text(str(pathlib.Path.cwd()) + "\n")'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/livcr demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy bot commands storage demo
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The database again with PostgreSQL (a throw-away server, installed from Debian's packages
# when missing and run as root; see scripts/pg-test-server): every test that needs no
# homeserver (the repositories' tests, identities and the audit chain included, run on both
# backends there), and the end-to-end scenarios whose substance is what the database keeps:
# dossiers, votes and fiches, follow-up (actions, the meeting record), the outbox and the
# kill -9 harness. The scenarios about the Matrix side (trust, interop with Element, deployment,
# doctor, metrics, restore, robustness) run once, in `make test`: CI has 45 minutes.
PG_E2E := tests/test_crash.py tests/test_e2e_dossiers.py tests/test_e2e_followup.py \
	tests/test_e2e_outbox.py tests/test_e2e_votes.py
test-pg: $(STAMP)
	bash scripts/pg-test-server run sh -c '$(BIN)/python -m pytest -q -p no:cacheprovider -rs \
		-m "not e2e" && $(BIN)/python -m pytest -q -p no:cacheprovider -rs $(PG_E2E)'

# The unit and handler tests and `livcr demo --once` on simulated dates (DST nights, New Year's
# Eve, a leap day, public holidays, a Tuesday at the meeting hour); any date:
# scripts/test-dates 2027-05-04T10:00:00+02:00
test-dates: $(STAMP)
	BIN=$(BIN) bash scripts/test-dates

# 10,000 examples per fuzzer (command bodies, event shapes, whole syncs through the edge);
# CI runs `make fuzz FUZZ_EXAMPLES=2000` to stay inside its time budget.
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	LIVCR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
		tests/test_event_shapes.py tests/test_fuzz_events.py

# The benchmarks of spec §12 at full size (about 21 minutes on 2 cores; README "Performance").
bench: $(STAMP)
	$(BIN)/python bench/cadence.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/privacy.py

# The same benchmarks at small sizes, for CI: they must run and print their tables; nothing
# is asserted about time.
bench-smoke: $(STAMP)
	$(BIN)/python bench/cadence.py --tables 50 --repeat 3
	$(BIN)/python bench/latency.py --members 3 --rounds 1 --concurrent-rounds 1
	$(BIN)/python bench/scale.py --sizes 2 20 --rounds 1 --concurrent-rounds 1
	$(BIN)/python bench/privacy.py --repeat 1

clean:
	rm -rf $(VENV) demo-data build *.egg-info
