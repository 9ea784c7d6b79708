#!/usr/bin/env bash
# The "new user" trial of issue #8: shrink models the team has not seen with the default command
# and measure them in ONNX Runtime.
#
#   models/train/unseen_trial.sh [MODEL_DIR]
#
# MODEL_DIR (default $HOME/.cache/chanopt/unseen) holds the ONNX files written by
# models/train/unseen.py. Work files (binary, slim models, reports, logs) go to $WORK (default
# /tmp/unseen). For each MODEL.onnx: ONNX Runtime accuracy on the 10k test set, then exactly
#
#   chanopt shrink MODEL.onnx --macs 0.5 --data train-images-idx3-ubyte.gz -o SLIM.onnx --report SLIM.json
#
# (defaults otherwise; wall time by /usr/bin/time), ONNX Runtime accuracy of SLIM.onnx and
# onnx.checker (full check) on it. Prints one markdown table row per model. Run from anywhere; the
# binary is built once from the repository this script lives in.

set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
models="${1:-$HOME/.cache/chanopt/unseen}"
work="${WORK:-/tmp/unseen}"
data=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
export ORT_NODE_MODULES="${ORT_NODE_MODULES:-$HOME/.cache/chanopt/ort-1.30.0/node_modules}"
mkdir -p "$work"

echo "repository $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" status --porcelain -- '*.go' | grep -q . && echo ' + uncommitted Go changes in the working tree')" >&2
(cd "$repo" && go build -o "$work/chanopt" ./cmd/chanopt) || { echo "go build failed" >&2; exit 1; }

ort_acc() { # prints the accuracy (0..1) or nothing
	node "$here/ort_eval.mjs" "$1" 2>>"$work/ort.err" | jq -r 'select(.ort_accuracy != null) | .ort_accuracy'
}
pct() { awk -v a="$1" 'BEGIN { printf "%.2f%%", 100 * a }'; }
mega() { awk -v a="$1" 'BEGIN { printf "%.2fM", a / 1e6 }'; }

echo "| model | params | MACs (1×1×28×28) | ONNX Runtime accuracy, 10k test | held-back agreement after each stage | onnx.checker | wall time |"
echo "|---|---|---|---|---|---|---|"
status=0
for model in "$models"/*.onnx; do
	name="$(basename "$model" .onnx)"
	case "$name" in *.slim) continue ;; esac
	slim="$work/$name.slim.onnx"
	report="$work/$name.slim.json"
	log="$work/$name.shrink.log"
	rm -f "$slim" "$report"
	before="$(ort_acc "$model")"
	/usr/bin/time -v -o "$work/$name.time" "$work/chanopt" shrink "$model" --macs 0.5 --data "$data" \
		-o "$slim" --report "$report" >"$log" 2>&1
	rc=$?
	wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/$name.time" |
		awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = 60 * s + $i; s = int(s + 0.5); printf "%dm%02ds", s / 60, s % 60 }')"
	if [ $rc -ne 0 ] || [ ! -f "$slim" ]; then
		err="$(grep -v '^\s*$' "$log" | tail -n 1)"
		echo "| $name | | | $(pct "${before:-0}") → failed (exit $rc) | \`$err\` | | $wall |"
		status=1
		continue
	fi
	after="$(ort_acc "$slim")"
	if /usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$slim" 2>"$work/$name.checker.err"; then
		checker=passes
	else
		checker="FAILS: $(tail -n 1 "$work/$name.checker.err")"
		status=1
	fi
	read -r p0 p1 m0 m1 < <(jq -r '[.before.params, .after.params, .before.macs, .after.macs] | @tsv' "$report")
	stages="$(jq -r '[.distill.stages[] | (.agreement.top1_agreement * 1000 | round) as $a
		| "\(.name) \($a / 10 | floor).\($a % 10)%" + (if .kept then "" else " (undone)" end)] | join(", ")' "$report")"
	ratio="$(awk -v a="$m1" -v b="$m0" 'BEGIN { printf "%.3f", a / b }')"
	if [ -n "$before" ] && [ -n "$after" ]; then
		delta="$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%+.2f", 100 * (a - b) }')"
		acc="$(pct "$before") → $(pct "$after") ($delta)"
	else
		acc="ORT failed: $(tail -n 1 "$work/ort.err")"
		status=1
	fi
	echo "| $name | $p0 → $p1 | $(mega "$m0") → $(mega "$m1") ($ratio) | $acc | $stages | $checker | $wall |"
done
exit $status
