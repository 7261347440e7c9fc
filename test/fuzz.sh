#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $FUZZTIME each (a duration
# such as 2m, or a count of inputs such as 2000x).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FUZZTIME:=2000x}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 200x "$pkg"
  done
done
