#!/usr/bin/env bash
# The test command (README, CI): builds everything in Release, runs every test project, then runs the kernel tests
# again with AVX-512 disabled so the Vector256 paths are tested too (DOTNET_EnableAVX512=0 is the .NET 10 knob).
# Fixture tests need ../shared/fixtures beside the repository; without it they are reported as skipped, with why.
set -euo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Normal verbosity is what prints a skipped test's reason; shown are the reasons, failures and summaries, not the
# passing tests or the runner's progress lines (the CLI tests' expected error messages show too: they go to stderr).
show() {
    awk '/\[SKIP\]$/ { print; getline; print; next }
         /^\[xUnit\.net / || /^  Passed / || /^  Skipped / { next }
         { print }'
}

dotnet build Engine.sln -c Release -nologo -v quiet
status=0
dotnet test Engine.sln -c Release --no-build -nologo --logger "console;verbosity=normal" 2>&1 | tee -a "$log" | show || status=1
DOTNET_EnableAVX512=0 dotnet test tests/Sd.Kernels.Tests -c Release --no-build -nologo --logger "console;verbosity=normal" 2>&1 \
    | tee -a "$log" | show || status=1

# One closing line over all runs: "N passed, N failed, N skipped" (from each run's "Passed: N" summary lines).
awk '/^ +(Passed|Failed|Skipped): +[0-9]+$/ { gsub(/ /, ""); split($0, kv, ":"); n[kv[1]] += kv[2] }
     END { printf "%d passed, %d failed, %d skipped\n", n["Passed"], n["Failed"], n["Skipped"]
           if (n["Passed"] == 0 || n["Failed"] > 0) exit 1 }' "$log"
exit "$status"
