#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, unit tests, end-to-end tests against the real test upstream,
# and the conformance runners. Installs what it needs (the upstream's cached virtualenv). Exits non-zero
# when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# A clean clone builds everything once: incremental caches would only cost disk (gigabytes here).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step "disk"
df -h . | tail -n 1
rm -rf target/e2e

step "test upstream (sekmet-fhir, cached virtualenv)"
bash tests/upstream/sekmet.sh install

step "pinned FHIR packages for the corpus tests (R4 examples; cached in target/fhir-packages)"
python3 profiles/build-definitions.py --fetch-only --tarballs target/fhir-packages

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build (debug)"
cargo build --workspace --all-targets --locked

step "unit, end-to-end and conformance tests"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt || status=$?

if [ -f target/conformance/validator-report.md ]; then
  step "HL7 validator cases report"
  cat target/conformance/validator-report.md
fi
if [ -f target/conformance/rest-report.md ]; then
  step "REST pass-through conformance report"
  cat target/conformance/rest-report.md
fi

step "disk after the tests"
df -h . | tail -n 1
du -sh target 2>/dev/null || true

# One closing line for the whole run, summed over every test binary from lines such as
# `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`
# (fields 4, 6 and 8). Tests marked #[ignore] are counted on the line before it, so that the closing
# line keeps the plain "N passed, N failed" form; no test skips itself (missing data fails).
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\nignored (#[ignore], not run): %d\ntests: %d passed, %d failed\n", i, p, f }' \
  target/test-output.txt
exit "$status"
