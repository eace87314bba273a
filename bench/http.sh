#!/usr/bin/env bash
# HTTP benchmark: wrk against Herald and against nginx serving the same 1 KiB file on 127.0.0.1.
#
#   bench/http.sh [--rounds N] [--duration D] [--conns N] [--threads N] [--workers N]
#                 [--herald PATH] [--quick]
#
# Every option can also be given in the environment: ROUNDS (3), DURATION (10s), CONNS (50),
# THREADS (wrk threads, 1), WORKERS (server workers, nproc), HERALD_BIN (build/herald),
# QUICK=1 (1 round of 3s unless ROUNDS/DURATION are given). Further knobs: WARMUP (2s, 1s with
# QUICK), PAUSE (seconds between runs, 1), STARTUP_TIMEOUT (10), RESULTS_DIR (bench/results;
# set it empty to write nothing), STRICT=1 (exit 1 when a ratio misses the 1.0 target),
# KEEP_TMP=1 (keep the temp dir with configs, logs and raw wrk output).
# BENCH_SELFTEST=1 puts a second nginx where Herald goes, to test this script without Herald.
#
# Only 127.0.0.1 is used; every wrk run and every wait is bounded by `timeout`.
# SCHED (batch: Herald's default; normal: --sched normal) and PEER_SCHED (normal; batch: the
# peers under chrt -b 0): the servers' scheduling policies (sched_knobs in lib.sh).
set -euo pipefail

BENCH_NAME=http.sh
SYS_TICKS_IRQ=0 # busy = user+nice+system (see sys_ticks in lib.sh)
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NGINX_TEMPLATE="$REPO/bench/peers/nginx.conf.in"

# ---- options ---------------------------------------------------------------------------------
while (($#)); do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--conns) CONNS=${2:?}; shift 2 ;;
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
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-$(nproc)}
HERALD_BIN=${HERALD_BIN:-$REPO/build/herald}
PAUSE=${PAUSE:-1}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-10}
RESULTS_DIR=${RESULTS_DIR-$REPO/bench/results}
STRICT=${STRICT:-0}
KEEP_TMP=${KEEP_TMP:-0}
FOREIGN_WARN=${FOREIGN_WARN:-10}
BENCH_SELFTEST=${BENCH_SELFTEST:-0}
# PIN=1 (default): Herald's default, each worker pinned to a CPU, against nginx with
# `worker_cpu_affinity auto`. PIN=0: Herald --no-pin against nginx's default (unpinned).
PIN=${PIN:-1}
# SCHED (batch) and PEER_SCHED (normal): the servers' scheduling policies (sched_knobs, lib.sh).
sched_knobs

[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1 (got '$PIN')"
for v in ROUNDS CONNS THREADS WORKERS STARTUP_TIMEOUT; do
	is_uint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
((THREADS <= CONNS)) || die "THREADS ($THREADS) must not exceed CONNS ($CONNS)"

# wrk durations: N, Ns, Nm, Nh.
(($(dur_secs "$DURATION") > 0)) || die "duration '$DURATION' must be positive"
WARMUP_S=$(dur_secs "$WARMUP")

# ---- tools -----------------------------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: run scripts/install-deps (it installs $2)"; }
need wrk wrk
NGINX=$(command -v nginx || true)
if [[ -z $NGINX && -x /usr/sbin/nginx ]]; then NGINX=/usr/sbin/nginx; fi
[[ -n $NGINX ]] || die "nginx not found: run scripts/install-deps (it installs nginx-light)"
need timeout coreutils
[[ -r $NGINX_TEMPLATE ]] || die "missing $NGINX_TEMPLATE"

if [[ $BENCH_SELFTEST == 1 ]]; then
	A_NAME=nginx-b
	warn "BENCH_SELFTEST=1: a second nginx stands in for Herald; the numbers say nothing about Herald"
else
	A_NAME=herald
	[[ -x $HERALD_BIN ]] || die "Herald binary not found or not executable: $HERALD_BIN (build it with 'make' first, or set HERALD_BIN)"
fi
B_NAME=nginx

# ---- temp dir, cleanup -----------------------------------------------------------------------
bench_tmp herald-bench
ROOT="$TMP/root"
mkdir -p "$ROOT" "$TMP/wrk"

# CPU ticks used by the reaped children of this shell (wrk, through timeout). `times` must run
# in this shell, not in a $(...) subshell, whose counters start at zero.
child_ticks() {
	times >"$TMP/times"
	awk -v hz="$CLK_TCK" 'NR == 2 {
		for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + substr(a[2], 1, length(a[2]) - 1) }
		printf "%d\n", s * hz }' "$TMP/times"
}

bench_traps

# ---- content ---------------------------------------------------------------------------------
# 768 random bytes in base64 are exactly 1024 printable bytes.
head -c 768 /dev/urandom | base64 -w0 >"$ROOT/bench.bin"
[[ $(stat -c %s "$ROOT/bench.bin") == 1024 ]] || die "bench.bin is not 1024 bytes"
printf '<!doctype html><title>Herald bench</title><p>bench root</p>\n' >"$ROOT/index.html"
chmod 755 "$TMP" "$ROOT"
chmod 644 "$ROOT/bench.bin" "$ROOT/index.html"

# ---- servers ---------------------------------------------------------------------------------
# GET /bench.bin once and check it is a 200 with exactly our file.
check_response() { # name port
	local name=$1 port=$2 resp="$TMP/$1.check"
	http_get "$port" /bench.bin >"$resp"
	head -n1 "$resp" | grep -q '^HTTP/1\.[01] 200' ||
		die "$name: GET /bench.bin did not answer 200: $(head -c 300 "$resp")"
	tail -c 1024 "$resp" | cmp -s - "$ROOT/bench.bin" ||
		die "$name: GET /bench.bin body differs from the file"
}

start_nginx() { # name
	local name=$1 prefix="$TMP/$1" conf user_line
	pick_port
	PORT[$name]=$REPLY
	mkdir -p "$prefix"
	chmod 755 "$prefix"
	if ((EUID == 0)); then user_line='user root;'; else user_line='# not root: no user directive'; fi
	local affinity='# unpinned (PIN=0)'
	((PIN)) && affinity='worker_cpu_affinity auto;'
	sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|$WORKERS|" -e "s|@PREFIX@|$prefix|g" \
		-e "s|@AFFINITY@|$affinity|" \
		-e "s|@PORT@|${PORT[$name]}|" -e "s|@ROOT@|$ROOT|" "$NGINX_TEMPLATE" >"$prefix/nginx.conf"
	conf="$prefix/nginx.conf"
	! grep -v '^[[:space:]]*#' "$conf" | grep '@[A-Z_]*@' >&2 || die "unsubstituted placeholder in $conf"
	timeout 10 "$NGINX" -t -q -p "$prefix/" -c "$conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 ||
		{ cat "$prefix/stdout.log" "$prefix/error.log" >&2 2>/dev/null || true; die "$name: nginx -t failed"; }
	"${PEER_CHRT[@]}" "$NGINX" -p "$prefix/" -c "$conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 &
	PID[$name]=$!
	wait_ready "$name" "$prefix/error.log" check_response
}

start_herald() { # name
	local pin_flag=()
	((PIN)) || pin_flag=(--no-pin)
	start_server "$1" check_response "$HERALD_BIN" --listen "127.0.0.1:@PORT@" --threads "$WORKERS" \
		--root "$ROOT" --log-level warn "${pin_flag[@]}" "${HERALD_SCHED[@]}"
}

# ---- runs ------------------------------------------------------------------------------------
# wrk_once name mode duration outfile: one bounded wrk run, raw output to outfile.
wrk_once() {
	local name=$1 mode=$2 dur=$3 out=$4 secs
	local args=(-t"$THREADS" -c"$CONNS" -d"$dur" --latency)
	[[ $mode == close ]] && args+=(-H 'Connection: close')
	secs=$(dur_secs "$dur")
	if ! timeout -k 5 $((secs + 30)) wrk "${args[@]}" "http://127.0.0.1:${PORT[$name]}/bench.bin" >"$out" 2>&1; then
		cat "$out" >&2
		die "wrk against $name ($mode) failed or timed out"
	fi
	alive "${PID[$name]}" || die "$name died during the $mode run"
}

# Prints "rps p99_ms requests errors non2xx" from one wrk --latency output.
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return -1
	}
	/^Requests\/sec:/ { rps = $2 }
	/^[ \t]*99%/ { p99 = ms($2) }
	/ requests in / { reqs = $1 }
	/Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	END {
		if (rps == "" || p99 == "" || reqs == "" || p99 < 0) exit 1
		printf "%s %.3f %d %d %d\n", rps, p99, reqs, errs + 0, non2xx + 0
	}' "$1"
}

measure() { # round mode name
	local round=$1 mode=$2 name=$3 out c0 c1 w0 w1 b0 t0 b1 t1 parsed rps p99 reqs errs non2xx cpu_us foreign
	out="$TMP/wrk/$mode-$name-r$round.txt"
	c0=$(cpu_ticks "${PID[$name]}")
	read -r b0 t0 < <(sys_ticks)
	w0=$(child_ticks)
	wrk_once "$name" "$mode" "$DURATION" "$out"
	w1=$(child_ticks)
	read -r b1 t1 < <(sys_ticks)
	c1=$(cpu_ticks "${PID[$name]}")
	parsed=$(parse_wrk "$out") || { cat "$out" >&2; die "could not parse wrk output ($out)"; }
	read -r rps p99 reqs errs non2xx <<<"$parsed"
	((reqs > 0)) || die "$name ($mode): wrk completed no requests"
	cpu_us=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
	# CPU used by anything but this server and wrk, as % of the whole machine: other load
	# (builds, tests, the other server) that makes req/s and p99 noisy.
	foreign=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v s=$((c1 - c0)) -v w=$((w1 - w0)) \
		'BEGIN { f = (t > 0) ? (b - s - w) * 100 / t : 0; printf "%.1f", (f < 0) ? 0 : f }')
	((errs == 0)) || warn "$name ($mode, round $round): $errs socket errors"
	((non2xx == 0)) || warn "$name ($mode, round $round): $non2xx non-2xx/3xx responses"
	over_limit "$foreign" "$FOREIGN_WARN" &&
		warn "$name ($mode, round $round): other processes used $foreign% of the machine's CPU during the run"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$name" "$round" "$rps" "$p99" "$cpu_us" \
		"$reqs" "$errs" "$non2xx" "$foreign" >>"$RES"
	log "round $round $mode $name: $rps req/s, p99 $p99 ms, $cpu_us CPU us/req, other load $foreign%"
}

# ---- main ------------------------------------------------------------------------------------
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$(wrk --version 2>&1 | head -n1 | awk '{print $2}' || true)
GIT_REV=$(git_rev)

log "rounds=$ROUNDS duration=$DURATION conns=$CONNS wrk-threads=$THREADS workers=$WORKERS pin=$PIN" \
	"sched=$SCHED peer-sched=$PEER_SCHED cpus=$(nproc)"
machine_busy
start_nginx "$B_NAME"
if [[ $BENCH_SELFTEST == 1 ]]; then start_nginx "$A_NAME"; else start_herald "$A_NAME"; fi

MODES=(keepalive close)
log "warm-up ${WARMUP} per server and mode"
for mode in "${MODES[@]}"; do
	for name in "$A_NAME" "$B_NAME"; do
		wrk_once "$name" "$mode" "${WARMUP_S}s" "$TMP/wrk/warmup-$mode-$name.txt"
	done
done

# Alternate servers run by run; the order flips every round (A B, B A, ...) so neither server
# always runs right after the other one's connection churn.
for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order=("$A_NAME" "$B_NAME"); else order=("$B_NAME" "$A_NAME"); fi
	for mode in "${MODES[@]}"; do
		for name in "${order[@]}"; do
			sleep "$PAUSE"
			measure "$round" "$mode" "$name"
		done
	done
done

# ---- report ----------------------------------------------------------------------------------
# col_stats / sum_col mode name column (lib.sh): 4 rps, 5 p99, 6 cpu, 8 errors, 9 non-2xx, 10 other load.
SUMMARY="$TMP/summary.md"
FAIL=0
{
	echo
	echo "## HTTP benchmark: $A_NAME vs nginx"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · herald $GIT_REV · nginx $NGINX_VERSION · wrk $WRK_VERSION ·" \
		"$(nproc) CPUs · $(uname -r)"
	echo "GET /bench.bin (1024 B) on 127.0.0.1 · $ROUNDS round(s) × $DURATION · wrk -t$THREADS -c$CONNS ·" \
		"$WORKERS server workers · Herald --sched $SCHED$([[ $PEER_SCHED == normal ]] || echo ", nginx under chrt -b 0") ·" \
		"CPU = server utime+stime per completed request ·" \
		"machine ${IDLE_BUSY}% busy before start"
	echo
	echo "| mode | server | req/s median (min-max) | p99 ms median | CPU us/req |"
	echo "| --- | --- | --- | --- | --- |"
	JSON_LINES=()
	for mode in "${MODES[@]}"; do
		for name in "$A_NAME" "$B_NAME"; do
			read -r rps rmin rmax < <(col_stats "$mode" "$name" 4)
			read -r p99 _ _ < <(col_stats "$mode" "$name" 5)
			read -r cpu _ _ < <(col_stats "$mode" "$name" 6)
			errs=$(sum_col "$mode" "$name" 8)
			non2xx=$(sum_col "$mode" "$name" 9)
			read -r foreign _ _ < <(col_stats "$mode" "$name" 10)
			printf '| %s | %s | %.0f (%.0f-%.0f) | %.2f | %.1f |\n' "$mode" "$name" "$rps" "$rmin" "$rmax" "$p99" "$cpu"
			JSON_LINES+=("$(printf 'JSON {"bench":"http","mode":"%s","server":"%s","rps_median":%.1f,"rps_min":%.1f,"rps_max":%.1f,"p99_ms_median":%.3f,"cpu_us_per_req_median":%.2f,"other_cpu_pct_median":%.1f,"socket_errors":%d,"non_2xx":%d,"rounds":%d,"duration":"%s","conns":%d,"wrk_threads":%d,"workers":%d,"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
				"$mode" "$name" "$rps" "$rmin" "$rmax" "$p99" "$cpu" "$foreign" "$errs" "$non2xx" "$ROUNDS" "$DURATION" "$CONNS" "$THREADS" "$WORKERS" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
		done
		read -r a_rps _ _ < <(col_stats "$mode" "$A_NAME" 4)
		read -r b_rps _ _ < <(col_stats "$mode" "$B_NAME" 4)
		read -r a_p99 _ _ < <(col_stats "$mode" "$A_NAME" 5)
		read -r b_p99 _ _ < <(col_stats "$mode" "$B_NAME" 5)
		read -r r_rps r_p99 ok < <(awk -v ar="$a_rps" -v br="$b_rps" -v ap="$a_p99" -v bp="$b_p99" 'BEGIN {
			rr = (br > 0) ? ar / br : 0; rp = (ap > 0) ? bp / ap : 0
			printf "%.3f %.3f %d\n", rr, rp, (rr >= 1.0) }')
		((ok)) || FAIL=1
		printf '| %s | **ratio** | %s/nginx req/s = **%s** | nginx/%s p99 = %s | |\n' "$mode" "$A_NAME" "$r_rps" "$A_NAME" "$r_p99"
	done
	echo
	echo "Target: $A_NAME/nginx req/s >= 1.0 in both modes: $( ((FAIL)) && echo MISSED || echo met)."
	noisy_note 10 "req/s and p99" "CPU us/req"
	echo
	printf '%s\n' "${JSON_LINES[@]}"
} >"$SUMMARY"
cat "$SUMMARY"

save_results http "$SUMMARY" "$TMP"/wrk/*.txt

if ((FAIL)) && [[ $STRICT == 1 ]]; then
	echo "http.sh: target missed (STRICT=1)" >&2
	exit 1
fi
