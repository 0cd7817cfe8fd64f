#!/usr/bin/env bash
# The test command (README, CI): builds everything in Release, runs every test project, then runs the kernel tests
# again with AVX-512 disabled so the Vector256 paths are tested too (DOTNET_EnableAVX512=0 is the .NET 10 knob).
# Fixture tests need ../shared/fixtures beside the repository; without it they are reported as skipped, with why.
set -euo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

dotnet build Engine.sln -c Release -nologo -v quiet
status=0
dotnet test Engine.sln -c Release --no-build -nologo 2>&1 | tee -a "$log" || status=1
DOTNET_EnableAVX512=0 dotnet test tests/Sd.Kernels.Tests -c Release --no-build -nologo 2>&1 | tee -a "$log" || status=1

# One closing line over all runs: "N passed, N failed, N skipped".
awk '/(Passed|Failed)! +- +Failed:/ {
        gsub(",", ""); for (i = 1; i <= NF; i++) {
            if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s; if (p == 0 || f > 0) exit 1 }' "$log"
exit "$status"
