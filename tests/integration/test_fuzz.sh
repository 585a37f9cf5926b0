#!/usr/bin/env bash
# timeout: 300
# The libFuzzer targets (control-request decoder, configuration loader,
# a plain listener's handshake and frame parser, frames behind a valid
# handshake), each for FUZZ_SECONDS (default 15 here; `make fuzz` alone
# runs 60), the last for FUZZ_UPGRADED_SECONDS (default 5 here).
set -u
cd "${SRCDIR:-.}"
secs=${FUZZ_SECONDS:-15}
usecs=${FUZZ_UPGRADED_SECONDS:-5}
targets="ctl config wsparse upgraded"
echo "1..4"
if ! command -v clang >/dev/null; then
	for t in $targets; do
		echo "ok - fuzz_$t # skip clang not installed"
	done
	exit 0
fi
if make -s fuzz FUZZ_SECONDS="$secs" FUZZ_UPGRADED_SECONDS="$usecs" >build/fuzz-run.log 2>&1; then
	for t in $targets; do
		n=$(sed -n "/fuzzing $t/,/executed_units/s/.*executed_units: *//p" \
		    build/fuzz-run.log)
		s=$secs; [ $t != upgraded ] || s=$usecs
		echo "ok - fuzz_$t: ${s}s, ${n:-?} inputs, nothing found"
	done
else
	tail -40 build/fuzz-run.log
	for t in $targets; do
		echo "not ok - fuzz_$t: the fuzz run failed (build/fuzz/crash-*)"
	done
	exit 1
fi
