#!/usr/bin/env bash
# Runs the speed issue's target rows with `sd bench --json` and prints them as a markdown table with the machine
# line, each against its target. Usage:
#   bench/targets.sh F32_MODEL [F16_MODEL]      (folders from `sd make-random-model --like sd15 [--dtype f16]`)
# Env: SD (the sd binary; default: build tools/Sd.Cli in Release and use it), REPS (timed runs per part, default 3;
# txt2img is timed once), TOKENIZER (a CLIP tokenizer folder, vocab.json and merges.txt, for the txt2img rows:
# make-random-model writes none; not needed when the model folders hold a tokenizer/). Every part also runs a
# warm-up and a FLOP-counting run first, so a txt2img row is three whole pipelines: about 10 minutes on a 2-core
# Zen 5, about 17 on a 2-core Zen 4, far longer without AVX-512.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 F32_MODEL [F16_MODEL]" >&2
    exit 2
fi
f32=$1
f16=${2:-}
reps=${REPS:-3}
tokenizer=()
if [[ -n ${TOKENIZER:-} ]]; then
    tokenizer=(--tokenizer "$TOKENIZER")
fi
# The txt2img rows come last and take the longest: refuse at once rather than after the other rows.
for model in "$f32" ${f16:+"$f16"}; do
    if [[ -z ${TOKENIZER:-} && ! -d $model/tokenizer ]]; then
        echo "$0: $model has no tokenizer folder (make-random-model writes none): set TOKENIZER to a CLIP tokenizer folder" >&2
        exit 2
    fi
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${SD:-}" ]]; then
    dotnet build -c Release "$root/tools/Sd.Cli" >/dev/null
    SD="$root/tools/Sd.Cli/bin/Release/net10.0/sd"
fi

# The value of a numeric key in bench's one-line JSON object; fails naming the key when it is not there.
field() {
    local value
    value=$(sed -nE "s/.*\"$2\":([-0-9.eE+]+).*/\1/p" <<<"$1")
    if [[ -z $value ]]; then
        echo "$0: sd bench printed no $2: $1" >&2
        exit 1
    fi
    echo "$value"
}

# Prints "yes" when $1 <= $2, else "no, by N%".
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v <= t) print "yes"; else printf "no, by %.0f%%\n", (v / t - 1) * 100 }'; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
avx512=$(grep -m1 -o 'avx512f' /proc/cpuinfo || echo "no AVX-512")
echo "**Machine:** $cpu (family $family), $(nproc) threads, $avx512, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), .NET $(dotnet --list-runtimes | sed -nE 's/^Microsoft.NETCore.App ([^ ]+).*/\1/p' | tail -1), commit $(git -C "$root" rev-parse --short HEAD)"
echo
echo "| row | median s | target s | met | peak RSS MiB | target MiB | met | % of FMA peak |"
echo "|---|---:|---:|---|---:|---:|---|---:|"

# row NAME TARGET_S RSS_TARGET_MIB(or -) sd-bench-arguments...
row() {
    local name=$1 target=$2 rss_target=$3
    shift 3
    local json
    json=$("$SD" bench --json "$@")
    local median rss peak
    median=$(field "$json" median_s)
    rss=$(field "$json" peak_rss_mib)
    peak=$(field "$json" percent_of_peak)
    local rss_met="-"
    if [[ $rss_target != "-" ]]; then
        rss_met=$(verdict "$rss" "$rss_target")
    fi
    printf "| %s | %.3f | %s | %s | %.0f | %s | %s | %.0f%% |\n" "$name" "$median" "$target" "$(verdict "$median" "$target")" \
        "$rss" "$rss_target" "$rss_met" "$peak"
}

# The issue's GB are decimal: 5 GB = 4768 MiB, 3.2 GB = 3052 MiB.
row "text encoder, 77 tokens" 0.1 - --model "$f32" --part text --reps "$reps"
row "UNet 64x64 latents, batch 2" 3.0 - --model "$f32" --part unet --batch 2 --reps "$reps"
row "UNet 32x32 latents, batch 2" 0.6 - --model "$f32" --part unet --batch 2 --height 256 --width 256 --reps "$reps"
row "VAE decode 64x64 -> 512x512" 5 - --model "$f32" --part vae-decode --reps "$reps"
row "txt2img 512x512, 20 steps DPM++ 2M, F32 weights" 70 4768 --model "$f32" --part txt2img --reps 1 "${tokenizer[@]}"
if [[ -n $f16 ]]; then
    row "txt2img, same, F16 weights" 70 3052 --model "$f16" --part txt2img --reps 1 "${tokenizer[@]}"
fi
