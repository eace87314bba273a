#!/usr/bin/env bash
# WebSocket echo benchmark: bench/wsload against Herald's --echo-path and against a Bun echo server
# (bench/peers/bun-echo.js) on 127.0.0.1.
#
#   bench/echo.sh [--rounds N] [--duration D] [--conns N] [--inflight N] [--bytes N] [--text]
#                 [--threads N] [--workers N] [--herald PATH] [--quick]
#
# Every option can also be given in the environment: ROUNDS (3), DURATION (10s), CONNS (100),
# INFLIGHT (messages in flight per connection, 1), BYTES (message size, 64), TEXT=1 (text
# messages; default binary), THREADS (wsload threads, 1), WORKERS (Herald threads, nproc),
# HERALD_BIN (build/herald), QUICK=1 (1 round of 3s unless ROUNDS/DURATION are given).
# Further knobs: PIN (1: Herald pins its workers, its default; 0: --no-pin), WARMUP (2s, 1s with
# QUICK: load before each measured window), PAUSE (seconds between runs, 1), STARTUP_TIMEOUT
# (10), RESULTS_DIR (bench/results; set it empty to write nothing), STRICT=1 (exit 1 when
# Herald/Bun msgs/s misses 1.0), KEEP_TMP=1 (keep the temp dir with logs and raw output),
# FOREIGN_WARN (10 %), BUN_BIN (bench/peers/node_modules/.bin/bun, installed by `npm ci` in
# bench/peers; without it only Herald runs), WSLOAD_BIN (build/wsload, made with `make build/wsload`).
# BENCH_SELFTEST=1 puts a second Herald where Bun goes, to test this script without Bun.
#
# Bun is single-threaded by design (one JavaScript thread serves every socket) and is never pinned.
# Only 127.0.0.1 is used; every wsload run and every wait is bounded by `timeout`.
# SCHED (batch: Herald's default; normal: --sched normal) and PEER_SCHED (normal; batch: the
# peers under chrt -b 0): the servers' scheduling policies (sched_knobs in lib.sh).
set -euo pipefail

BENCH_NAME=echo.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- options ---------------------------------------------------------------------------------
while (($#)); do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--conns) CONNS=${2:?}; shift 2 ;;
	--inflight) INFLIGHT=${2:?}; shift 2 ;;
	--bytes) BYTES=${2:?}; shift 2 ;;
	--text) TEXT=1; shift ;;
	--threads) THREADS=${2:?}; shift 2 ;;
	--workers) WORKERS=${2:?}; shift 2 ;;
	--herald) HERALD_BIN=${2:?}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	ROUNDS=${ROUNDS:-1}
	DURATION=${DURATION:-3s}
	WARMUP=${WARMUP:-1s}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-100}
INFLIGHT=${INFLIGHT:-1}
BYTES=${BYTES:-64}
TEXT=${TEXT:-0}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-$(nproc)}
HERALD_BIN=${HERALD_BIN:-$REPO/build/herald}
WSLOAD_BIN=${WSLOAD_BIN:-$REPO/build/wsload}
BUN_BIN=${BUN_BIN:-$REPO/bench/peers/node_modules/.bin/bun}
BUN_SCRIPT="$REPO/bench/peers/bun-echo.js"
PAUSE=${PAUSE:-1}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-10}
RESULTS_DIR=${RESULTS_DIR-$REPO/bench/results}
STRICT=${STRICT:-0}
KEEP_TMP=${KEEP_TMP:-0}
FOREIGN_WARN=${FOREIGN_WARN:-10}
BENCH_SELFTEST=${BENCH_SELFTEST:-0}
PIN=${PIN:-1}
sched_knobs # SCHED (batch) and PEER_SCHED (normal): the servers' scheduling policies (lib.sh)

[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1 (got '$PIN')"
[[ $TEXT == 0 || $TEXT == 1 ]] || die "TEXT must be 0 or 1 (got '$TEXT')"
for v in ROUNDS CONNS INFLIGHT BYTES THREADS WORKERS STARTUP_TIMEOUT; do
	is_uint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
((BYTES >= 32)) || die "BYTES must be at least 32 (the payload carries a sequence number and a timestamp)"

DURATION_S=$(dur_secs "$DURATION")
WARMUP_S=$(dur_secs "$WARMUP")
((DURATION_S > 0)) || die "DURATION must be positive"

# ---- tools -----------------------------------------------------------------------------------
command -v timeout >/dev/null 2>&1 || die "timeout not found (coreutils)"
[[ -x $HERALD_BIN ]] || die "Herald binary not found or not executable: $HERALD_BIN (build it with 'make' first, or set HERALD_BIN)"
build_wsload

A_NAME=herald
if [[ $BENCH_SELFTEST == 1 ]]; then
	B_NAME=herald-b
	warn "BENCH_SELFTEST=1: a second Herald stands in for Bun; the ratios say nothing about Bun"
elif bun_ok; then
	B_NAME=bun
	[[ -r $BUN_SCRIPT ]] || die "missing $BUN_SCRIPT"
else
	B_NAME=
	warn "bun not found or not runnable at $BUN_BIN (run 'npm ci' in bench/peers, or set BUN_BIN): Herald runs alone, no ratios"
fi
SERVERS=("$A_NAME")
[[ -z $B_NAME ]] || SERVERS+=("$B_NAME")

# ---- temp dir, cleanup -----------------------------------------------------------------------
bench_tmp herald-echo-bench
mkdir -p "$TMP/runs"
bench_traps

# ---- servers ---------------------------------------------------------------------------------
WS_ARGS=()
((TEXT)) && WS_ARGS+=(--text)

# A short wsload run that must complete round trips with no error: the echo works.
check_echo() { # name port
	local name=$1 out="$TMP/$1.check"
	if ! timeout -k 2 20 "$WSLOAD_BIN" --url "ws://127.0.0.1:${PORT[$name]}/echo" -c 2 -w 2 \
		-b "$BYTES" "${WS_ARGS[@]}" -d 0.5 --warmup 0 --connect-timeout 5 >"$out" 2>&1 ||
		! grep -q '^JSON .*"errors":0,' "$out"; then
		cat "$out" >&2
		die "$name: the echo check failed"
	fi
}

start_herald() { # name
	local pin_flag=()
	((PIN)) || pin_flag=(--no-pin)
	start_server "$1" check_echo "$HERALD_BIN" --listen "127.0.0.1:@PORT@" --threads "$WORKERS" \
		--echo-path /echo --no-compression --log-level warn "${pin_flag[@]}" "${HERALD_SCHED[@]}"
}

start_bun() { start_server "$1" check_echo "${PEER_CHRT[@]}" "$BUN_BIN" "$BUN_SCRIPT" @PORT@; }

# ---- runs ------------------------------------------------------------------------------------
measure() { # round name
	local round=$1 name=$2 out f
	local -A v=()
	out="$TMP/runs/$name-r$round.txt"
	if ! timeout -k 5 $((WARMUP_S + DURATION_S + 45)) "$WSLOAD_BIN" --scenario echo \
		--url "ws://127.0.0.1:${PORT[$name]}/echo" -c "$CONNS" -w "$INFLIGHT" -b "$BYTES" \
		"${WS_ARGS[@]}" -t "$THREADS" -d "$DURATION_S" --warmup "$WARMUP_S" \
		--server-pid "${PID[$name]}" >"$out" 2>&1; then
		cat "$out" >&2
		die "wsload against $name failed or timed out"
	fi
	alive "${PID[$name]}" || die "$name died during round $round"
	for f in msgs_per_s p50_us p99_us p999_us server_cpu_us_per_msg gen_cpu_pct other_cpu_pct errors messages gen_cpu_us_per_msg; do
		v[$f]=$(json_field "$out" "$f")
		[[ -n ${v[$f]} && ${v[$f]} != null ]] || { cat "$out" >&2; die "no $f in wsload's output ($out)"; }
	done
	((v[messages] > 0)) || die "$name: wsload completed no round trips"
	((v[errors] == 0)) || warn "$name (round $round): ${v[errors]} errors: connect $(json_field "$out" connect_errors)," \
		"protocol $(json_field "$out" protocol_errors), bad echoes $(json_field "$out" bad_echoes), closed by the server $(json_field "$out" closed)"
	over_limit "${v[other_cpu_pct]}" "$FOREIGN_WARN" &&
		warn "$name (round $round): other processes used ${v[other_cpu_pct]}% of the machine's CPU during the run"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' echo "$name" "$round" "${v[msgs_per_s]}" \
		"${v[p50_us]}" "${v[p99_us]}" "${v[p999_us]}" "${v[server_cpu_us_per_msg]}" "${v[gen_cpu_pct]}" \
		"${v[other_cpu_pct]}" "${v[errors]}" "${v[gen_cpu_us_per_msg]}" >>"$RES"
	log "round $round $name: ${v[msgs_per_s]} msg/s, p50 ${v[p50_us]} us, p99 ${v[p99_us]} us," \
		"server ${v[server_cpu_us_per_msg]} CPU us/msg, wsload ${v[gen_cpu_pct]}% of a core, other load ${v[other_cpu_pct]}%"
}

# ---- main ------------------------------------------------------------------------------------
BUN_VERSION=-
[[ $B_NAME != bun ]] || BUN_VERSION=$(timeout 10 "$BUN_BIN" --version 2>/dev/null || echo unknown)
GIT_REV=$(git_rev)
TYPE=binary
((TEXT)) && TYPE=text

log "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP conns=$CONNS inflight=$INFLIGHT bytes=$BYTES ($TYPE)" \
	"wsload-threads=$THREADS herald-workers=$WORKERS pin=$PIN sched=$SCHED peer-sched=$PEER_SCHED cpus=$(nproc)"
machine_busy
start_herald "$A_NAME"
case $B_NAME in
bun) start_bun "$B_NAME" ;;
herald-b) start_herald "$B_NAME" ;;
esac

# Alternate servers run by run; the order flips every round (A B, B A, ...). Each wsload run
# opens fresh connections and loads them for WARMUP before its measured window.
for ((round = 1; round <= ROUNDS; round++)); do
	order=("${SERVERS[@]}")
	((round % 2)) || mapfile -t order < <(printf '%s\n' "${SERVERS[@]}" | tac)
	for name in "${order[@]}"; do
		sleep "$PAUSE"
		measure "$round" "$name"
	done
done

# ---- report ----------------------------------------------------------------------------------
# col_stats / sum_col echo name column (lib.sh): 4 msgs/s, 5 p50, 6 p99, 7 p99.9, 8 server CPU
# us/msg, 9 wsload % of a core, 10 other load %, 11 errors, 12 wsload CPU us/msg.
workers_of() {
	case $1 in
	bun) echo "1 (single-threaded, unpinned)" ;;
	*) echo "$WORKERS ($( ((PIN)) && echo pinned || echo unpinned))" ;;
	esac
}

SUMMARY="$TMP/summary.md"
FAIL=0
{
	echo
	echo "## WebSocket echo benchmark: ${SERVERS[*]}"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · herald $GIT_REV · bun $BUN_VERSION · $(nproc) CPUs · $(uname -r)"
	echo "wsload --scenario echo on 127.0.0.1 · $ROUNDS round(s) × ${DURATION_S}s after ${WARMUP_S}s warm-up ·" \
		"-c $CONNS -w $INFLIGHT -b $BYTES ($TYPE) -t $THREADS · Herald --threads $WORKERS" \
		"$( ((PIN)) && echo pinned || echo --no-pin) --sched $SCHED --no-compression · Bun single-threaded," \
		"never pinned$([[ $PEER_SCHED == normal ]] || echo ", under chrt -b 0") ·" \
		"msg = one round trip · CPU = server utime+stime per round trip over the measured window ·" \
		"machine ${IDLE_BUSY}% busy before start"
	echo
	echo "| server | workers | msgs/s median (min-max) | p50 us | p99 us | p99.9 us | server CPU us/msg | wsload CPU % of a core (us/msg) | other load % |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	JSON_LINES=()
	for name in "${SERVERS[@]}"; do
		read -r rate rmin rmax < <(col_stats echo "$name" 4)
		read -r p50 _ _ < <(col_stats echo "$name" 5)
		read -r p99 _ _ < <(col_stats echo "$name" 6)
		read -r p999 _ _ < <(col_stats echo "$name" 7)
		read -r cpu _ _ < <(col_stats echo "$name" 8)
		read -r gen _ _ < <(col_stats echo "$name" 9)
		read -r foreign _ _ < <(col_stats echo "$name" 10)
		read -r genus _ _ < <(col_stats echo "$name" 12)
		errs=$(sum_col echo "$name" 11)
		printf '| %s | %s | %.0f (%.0f-%.0f) | %.0f | %.0f | %.0f | %.2f | %.0f (%.2f) | %.1f |\n' "$name" \
			"$(workers_of "$name")" "$rate" "$rmin" "$rmax" "$p50" "$p99" "$p999" "$cpu" "$gen" "$genus" "$foreign"
		JSON_LINES+=("$(printf 'JSON {"bench":"ws-echo","server":"%s","msgs_per_s_median":%.1f,"msgs_per_s_min":%.1f,"msgs_per_s_max":%.1f,"p50_us_median":%.0f,"p99_us_median":%.0f,"p999_us_median":%.0f,"cpu_us_per_msg_median":%.3f,"wsload_cpu_pct_median":%.1f,"other_cpu_pct_median":%.1f,"errors":%d,"rounds":%d,"duration_s":%d,"conns":%d,"inflight":%d,"bytes":%d,"type":"%s","wsload_threads":%d,"workers":%d,"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
			"$name" "$rate" "$rmin" "$rmax" "$p50" "$p99" "$p999" "$cpu" "$gen" "$foreign" "$errs" "$ROUNDS" \
			"$DURATION_S" "$CONNS" "$INFLIGHT" "$BYTES" "$TYPE" "$THREADS" "$(
				[[ $name == bun ]] && echo 1 || echo "$WORKERS"
			)" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
	done
	if [[ -n $B_NAME ]]; then
		read -r a_rate _ _ < <(col_stats echo "$A_NAME" 4)
		read -r b_rate _ _ < <(col_stats echo "$B_NAME" 4)
		read -r a_p99 _ _ < <(col_stats echo "$A_NAME" 6)
		read -r b_p99 _ _ < <(col_stats echo "$B_NAME" 6)
		read -r a_cpu _ _ < <(col_stats echo "$A_NAME" 8)
		read -r b_cpu _ _ < <(col_stats echo "$B_NAME" 8)
		read -r r_rate r_p99 r_cpu ok < <(awk -v ar="$a_rate" -v br="$b_rate" -v ap="$a_p99" -v bp="$b_p99" \
			-v ac="$a_cpu" -v bc="$b_cpu" 'BEGIN {
			rr = (br > 0) ? ar / br : 0; rp = (bp > 0) ? ap / bp : 0; rc = (bc > 0) ? ac / bc : 0
			printf "%.3f %.3f %.3f %d\n", rr, rp, rc, (rr >= 1.0) }')
		((ok)) || FAIL=1
		read -r q_rate q_rmin q_rmax < <(pair_stats echo "$A_NAME" "$B_NAME" 4)
		read -r q_cpu q_cmin q_cmax < <(pair_stats echo "$A_NAME" "$B_NAME" 8)
		printf '| **%s/%s** | | msgs/s **%s** (higher is better; by round: %s, %s-%s) | | p99 %s (lower is better) | | CPU us/msg %s (lower is better; by round: %s, %s-%s) | | |\n' \
			"$A_NAME" "$B_NAME" "$r_rate" "$q_rate" "$q_rmin" "$q_rmax" "$r_p99" "$r_cpu" "$q_cpu" "$q_cmin" "$q_cmax"
		JSON_LINES+=("$(printf 'JSON {"bench":"ws-echo","ratio":"%s/%s","msgs_per_s":%s,"p99":%s,"cpu_us_per_msg":%s,"msgs_per_s_by_round":[%s,%s,%s],"cpu_us_per_msg_by_round":[%s,%s,%s],"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
			"$A_NAME" "$B_NAME" "$r_rate" "$r_p99" "$r_cpu" "$q_rate" "$q_rmin" "$q_rmax" "$q_cpu" "$q_cmin" "$q_cmax" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
	fi
	echo
	echo "wsload runs on the same $(nproc) CPUs as the servers: its CPU column is what the load itself cost;" \
		"near 100% of a core it, not the server, may be the limit (try THREADS=2)."
	[[ $B_NAME != bun ]] || echo "Bun serves from one thread by design; Herald uses $WORKERS."
	[[ -n $B_NAME ]] || echo "Bun was not available: Herald alone, no ratios."
	noisy_note 10 "msgs/s and latency" "CPU us/msg"
	echo
	printf '%s\n' "${JSON_LINES[@]}"
} >"$SUMMARY"
cat "$SUMMARY"

save_results echo "$SUMMARY" "$TMP"/runs/*.txt

if ((FAIL)) && [[ $STRICT == 1 ]]; then
	echo "echo.sh: target missed (STRICT=1)" >&2
	exit 1
fi
