#!/usr/bin/env bash
# Pub/sub benchmark: bench/wsload's fanout and rooms scenarios against Herald's broker (/ws,
# herald.v1) and against a Bun pub/sub server (bench/peers/bun-pubsub.js) on 127.0.0.1.
#
#   bench/pubsub.sh [--rounds N] [--duration D] [--scenarios LIST] [--workers N] [--herald PATH]
#                   [--quick]
#
# Scenarios (SCENARIOS, default "fanout fanout-big rooms"):
#   fanout      FANOUT_SUBS (1000) subscribers of one topic, one publisher keeping INFLIGHT (16)
#               messages of BYTES (64) in flight (in flight: not yet delivered to every subscriber;
#               WINDOW=probe: to the first one only)
#   fanout-big  the same with FANOUT_BIG_SUBS (10000) subscribers; skipped with a warning when the
#               file descriptor limit cannot be raised enough; 0 turns it off
#   rooms       ROOMS_CLIENTS (5000) clients in ROOMS (500) rooms, each subscribed to its room and
#               publishing to it RATE (1) messages/s; RATES="1 2 4" runs one rooms scenario per rate
# Every option can also be given in the environment: ROUNDS (3), DURATION (10s), SCENARIOS,
# WORKERS (Herald threads, nproc), HERALD_BIN (build/herald), QUICK=1 (1 round of 3 s; 200
# subscribers, 2000 for fanout-big, 500 clients in 50 rooms, unless given).
# Further knobs: THREADS (wsload threads, 1), PIN (1; 0: Herald --no-pin), WARMUP (2s; 1s with
# QUICK), PAUSE (seconds between runs, 2), SETTLE (seconds wsload waits for late deliveries, 5),
# CONNECT_TIMEOUT (seconds to open and subscribe all connections, 30), STARTUP_TIMEOUT (10),
# RESULTS_DIR (bench/results; empty: write nothing), KEEP_TMP=1, FOREIGN_WARN (10 %), STRICT=1
# (exit 1 when Herald/Bun deliveries/s misses 1.0 in a scenario, or a delivery was lost),
# BUN_BIN (bench/peers/node_modules/.bin/bun; without it only Herald runs), WSLOAD_BIN
# (build/wsload, made with `make build/wsload`), BENCH_SELFTEST=1 (a second Herald in Bun's place).
#
# Herald and wsload run from copies taken at the start, so a rebuild during the run changes
# nothing. Only 127.0.0.1 is used (wsload spreads its connections over 127.0.0.1-127.0.0.N when
# the ephemeral port range is too small); every wsload run and every wait is bounded by `timeout`.
set -euo pipefail

BENCH_NAME=pubsub.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- options ---------------------------------------------------------------------------------
while (($#)); do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--scenarios) SCENARIOS=${2:?}; shift 2 ;;
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
	FANOUT_SUBS=${FANOUT_SUBS:-200}
	FANOUT_BIG_SUBS=${FANOUT_BIG_SUBS:-2000}
	ROOMS_CLIENTS=${ROOMS_CLIENTS:-500}
	ROOMS=${ROOMS:-50}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SCENARIOS=${SCENARIOS:-fanout fanout-big rooms}
FANOUT_SUBS=${FANOUT_SUBS:-1000}
FANOUT_BIG_SUBS=${FANOUT_BIG_SUBS:-10000}
INFLIGHT=${INFLIGHT:-16}
BYTES=${BYTES:-64}
WINDOW=${WINDOW:-all}
ROOMS_CLIENTS=${ROOMS_CLIENTS:-5000}
ROOMS=${ROOMS:-500}
RATE=${RATE:-1}
RATES=${RATES:-$RATE}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-$(nproc)}
HERALD_BIN=${HERALD_BIN:-$REPO/build/herald}
WSLOAD_BIN=${WSLOAD_BIN:-$REPO/build/wsload}
BUN_BIN=${BUN_BIN:-$REPO/bench/peers/node_modules/.bin/bun}
BUN_SCRIPT="$REPO/bench/peers/bun-pubsub.js"
PAUSE=${PAUSE:-2}
SETTLE=${SETTLE:-5}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-10}
RESULTS_DIR=${RESULTS_DIR-$REPO/bench/results}
STRICT=${STRICT:-0}
KEEP_TMP=${KEEP_TMP:-0}
FOREIGN_WARN=${FOREIGN_WARN:-10}
BENCH_SELFTEST=${BENCH_SELFTEST:-0}
PIN=${PIN:-1}

[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1 (got '$PIN')"
[[ $WINDOW == all || $WINDOW == probe ]] || die "WINDOW must be all or probe (got '$WINDOW')"
for v in ROUNDS FANOUT_SUBS INFLIGHT BYTES ROOMS_CLIENTS ROOMS THREADS WORKERS STARTUP_TIMEOUT CONNECT_TIMEOUT SETTLE PAUSE; do
	is_uint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
[[ $FANOUT_BIG_SUBS =~ ^[0-9]+$ ]] || die "FANOUT_BIG_SUBS must be a number (got '$FANOUT_BIG_SUBS')"
((BYTES >= 48)) || die "BYTES must be at least 48 (the payload carries a sequence number, a timestamp and the publisher)"
((ROOMS <= ROOMS_CLIENTS)) || die "ROOMS ($ROOMS) must not exceed ROOMS_CLIENTS ($ROOMS_CLIENTS)"
for r in $RATES; do is_num "$r" || die "bad rate '$r' in RATES (messages/s per client)"; done

DURATION_S=$(dur_secs "$DURATION")
WARMUP_S=$(dur_secs "$WARMUP")
((DURATION_S > 0)) || die "DURATION must be positive"

# The scenario list, rooms expanded per rate: fanout, fanout-big, rooms-r<rate>.
RUN_SCEN=()
for s in $SCENARIOS; do
	case $s in
	fanout) RUN_SCEN+=(fanout) ;;
	fanout-big) ((FANOUT_BIG_SUBS == 0)) || RUN_SCEN+=(fanout-big) ;;
	rooms) for r in $RATES; do RUN_SCEN+=("rooms-r$r"); done ;;
	*) die "unknown scenario '$s' (fanout, fanout-big, rooms)" ;;
	esac
done

# ---- limits: file descriptors and source ports -----------------------------------------------
# Each side of every connection is a descriptor in wsload and in the server, and the script's
# children inherit its limit.
need_fds() { echo $(($1 + 256)); }
MAX_CONNS=0
for s in "${RUN_SCEN[@]}"; do
	case $s in
	fanout) n=$((FANOUT_SUBS + 1)) ;;
	fanout-big) n=$((FANOUT_BIG_SUBS + 1)) ;;
	rooms-*) n=$ROOMS_CLIENTS ;;
	esac
	((n <= MAX_CONNS)) || MAX_CONNS=$n
done
want=$(need_fds "$MAX_CONNS")
if (($(ulimit -n) < want)); then
	hard=$(ulimit -Hn)
	if [[ $hard == unlimited ]] || ((hard >= want)); then
		ulimit -n "$want"
	else
		ulimit -n "$hard"
	fi
fi
FD_LIMIT=$(ulimit -n)
fits() { (($(need_fds "$1") <= FD_LIMIT)); }
kept=()
for s in "${RUN_SCEN[@]}"; do
	case $s in
	fanout) n=$((FANOUT_SUBS + 1)) ;;
	fanout-big) n=$((FANOUT_BIG_SUBS + 1)) ;;
	rooms-*) n=$ROOMS_CLIENTS ;;
	esac
	if fits "$n"; then
		kept+=("$s")
	elif [[ $s == fanout-big ]]; then
		warn "fanout-big skipped: $n connections need $(need_fds "$n") file descriptors, the limit is $FD_LIMIT"
	else
		die "$s: $n connections need $(need_fds "$n") file descriptors, the limit is $FD_LIMIT (ulimit -Hn)"
	fi
done
RUN_SCEN=("${kept[@]}")
((${#RUN_SCEN[@]} > 0)) || die "no scenario to run"

# Connections from one source address to one server port can use every ephemeral port once; past
# about half the range (the other half left to whatever else runs), spread over 127.0.0.x.
read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range
EPH_HALF=$(((EPH_HI - EPH_LO + 1) / 2))
bind_args() { # connections -> --bind-range ... or nothing
	local n=$1 addrs
	((n > EPH_HALF)) || return 0
	addrs=$(((n + EPH_HALF - 1) / EPH_HALF))
	echo "--bind-range 127.0.0.1-127.0.0.$addrs"
}

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
bench_tmp herald-pubsub-bench
mkdir -p "$TMP/runs"
# Private copies: a rebuild of build/ during the run cannot swap the binaries under it.
cp "$HERALD_BIN" "$TMP/herald"
cp "$WSLOAD_BIN" "$TMP/wsload"
HERALD="$TMP/herald"
WSLOAD="$TMP/wsload"

bench_traps

# ---- servers and their protocols -------------------------------------------------------------
# What wsload sends to each server, and what it skips before the first delivery: Herald's welcome
# and subscribe ack; Bun's "OK SUB topic" (bun-pubsub.js). Herald also acks every publication; the
# acks carry no payload marker, so wsload ignores them.
proto_args() { # name -> sets PROTO (array)
	case $1 in
	herald*)
		PROTO=(--url "ws://127.0.0.1:${PORT[$1]}/ws" --subprotocol herald.v1 --skip-first 2
			--sub-template '{"op":"sub","topic":"{topic}"}'
			--pub-template '{"op":"pub","topic":"{topic}","data":"{payload}"}')
		;;
	bun)
		PROTO=(--url "ws://127.0.0.1:${PORT[$1]}/ws" --skip-first 1
			--sub-template 'SUB {topic}' --pub-template 'PUB {topic} {payload}')
		;;
	esac
}

# A short fanout to 2 subscribers that must deliver everything: the server and the templates work.
check_pubsub() { # name port
	local name=$1 out="$TMP/$1.check"
	proto_args "$name"
	if ! timeout -k 2 30 "$WSLOAD" --scenario fanout "${PROTO[@]}" --topic bench.check -c 2 -w 2 \
		-b "$BYTES" -d 0.5 --warmup 0 --settle 2 --connect-timeout 5 >"$out" 2>&1 ||
		! grep -q '^JSON .*"errors":0,.*"lost":0,' "$out"; then
		cat "$out" >&2
		die "$name: the pub/sub check failed"
	fi
}

start_herald() { # name
	local pin_flag=()
	((PIN)) || pin_flag=(--no-pin)
	start_server "$1" check_pubsub "$HERALD" --listen "127.0.0.1:@PORT@" --threads "$WORKERS" \
		--no-compression --log-level warn "${pin_flag[@]}"
}

start_bun() { start_server "$1" check_pubsub "$BUN_BIN" "$BUN_SCRIPT" @PORT@; }

# ---- runs ------------------------------------------------------------------------------------
# scen_args scenario round -> sets SCEN (array): wsload's scenario options.
scen_args() {
	local s=$1 round=$2 n
	case $s in
	fanout | fanout-big)
		n=$FANOUT_SUBS
		[[ $s == fanout ]] || n=$FANOUT_BIG_SUBS
		SCEN=(--scenario fanout -c "$n" -w "$INFLIGHT" --window "$WINDOW" --topic "bench.$s.r$round")
		read -ra b < <(bind_args $((n + 1)); echo)
		;;
	rooms-r*)
		SCEN=(--scenario rooms -c "$ROOMS_CLIENTS" --rooms "$ROOMS" --rate "${s#rooms-r}"
			--topic "bench.rooms.r$round")
		read -ra b < <(bind_args "$ROOMS_CLIENTS"; echo)
		;;
	esac
	SCEN+=(-b "$BYTES" "${b[@]}")
}

FIELDS=(msgs_per_s p50_us p99_us p999_us server_cpu_us_per_msg gen_cpu_pct other_cpu_pct errors
	gen_cpu_us_per_msg lost published_per_s expected received messages)

measure() { # round scenario name
	local round=$1 s=$2 name=$3 out f
	local -A v=()
	out="$TMP/runs/$s-$name-r$round.txt"
	proto_args "$name"
	scen_args "$s" "$round"
	if ! timeout -k 5 $((WARMUP_S + DURATION_S + 2 * CONNECT_TIMEOUT + SETTLE + 30)) "$WSLOAD" \
		"${SCEN[@]}" "${PROTO[@]}" -t "$THREADS" -d "$DURATION_S" --warmup "$WARMUP_S" \
		--settle "$SETTLE" --connect-timeout "$CONNECT_TIMEOUT" --server-pid "${PID[$name]}" \
		>"$out" 2>&1; then
		cat "$out" >&2
		die "wsload $s against $name failed or timed out"
	fi
	alive "${PID[$name]}" || die "$name died during $s, round $round"
	for f in "${FIELDS[@]}"; do
		v[$f]=$(json_field "$out" "$f")
		[[ -n ${v[$f]} && ${v[$f]} != null ]] || { cat "$out" >&2; die "no $f in wsload's output ($out)"; }
	done
	((v[messages] > 0)) || die "$name: wsload saw no delivery in $s"
	((v[errors] == 0)) || warn "$s $name (round $round): ${v[errors]} errors: connect $(json_field "$out" connect_errors)," \
		"protocol $(json_field "$out" protocol_errors), closed by the server $(json_field "$out" closed)"
	((v[lost] == 0)) || warn "$s $name (round $round): ${v[lost]} of ${v[expected]} deliveries lost" \
		"($(json_field "$out" unready) subscribers unconfirmed, $(json_field "$out" extra) extra," \
		"$(json_field "$out" out_of_order) out of order)"
	over_limit "${v[other_cpu_pct]}" "$FOREIGN_WARN" &&
		warn "$s $name (round $round): other processes used ${v[other_cpu_pct]}% of the machine's CPU during the run"
	# Columns: 1 scenario, 2 server, 3 round, 4 deliveries/s, 5 p50, 6 p99, 7 p99.9, 8 server CPU
	# us/delivery, 9 wsload % of a core, 10 other load %, 11 errors, 12 wsload us/delivery,
	# 13 lost, 14 published/s, 15 expected.
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$name" "$round" \
		"${v[msgs_per_s]}" "${v[p50_us]}" "${v[p99_us]}" "${v[p999_us]}" "${v[server_cpu_us_per_msg]}" \
		"${v[gen_cpu_pct]}" "${v[other_cpu_pct]}" "${v[errors]}" "${v[gen_cpu_us_per_msg]}" "${v[lost]}" \
		"${v[published_per_s]}" "${v[expected]}" >>"$RES"
	log "round $round $s $name: ${v[msgs_per_s]} deliveries/s (${v[published_per_s]} published/s)," \
		"p50 ${v[p50_us]} us, p99 ${v[p99_us]} us, server ${v[server_cpu_us_per_msg]} CPU us/delivery," \
		"wsload ${v[gen_cpu_pct]}% of a core, lost ${v[lost]}, other load ${v[other_cpu_pct]}%"
}

# ---- main ------------------------------------------------------------------------------------
BUN_VERSION=-
[[ $B_NAME != bun ]] || BUN_VERSION=$(timeout 10 "$BUN_BIN" --version 2>/dev/null || echo unknown)
GIT_REV=$(git_rev)

log "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP scenarios=${RUN_SCEN[*]} fanout=$FANOUT_SUBS" \
	"fanout-big=$FANOUT_BIG_SUBS inflight=$INFLIGHT window=$WINDOW bytes=$BYTES rooms=$ROOMS_CLIENTS/$ROOMS" \
	"rates=$RATES wsload-threads=$THREADS herald-workers=$WORKERS pin=$PIN cpus=$(nproc) fd-limit=$FD_LIMIT"
machine_busy
start_herald "$A_NAME"
case $B_NAME in
bun) start_bun "$B_NAME" ;;
herald-b) start_herald "$B_NAME" ;;
esac

# Scenario by scenario within a round, the servers alternate; their order flips every round
# (A B, B A, ...). Each run opens fresh connections on a topic of its own.
for ((round = 1; round <= ROUNDS; round++)); do
	order=("${SERVERS[@]}")
	((round % 2)) || mapfile -t order < <(printf '%s\n' "${SERVERS[@]}" | tac)
	for s in "${RUN_SCEN[@]}"; do
		for name in "${order[@]}"; do
			sleep "$PAUSE"
			measure "$round" "$s" "$name"
		done
	done
done

# ---- report ----------------------------------------------------------------------------------
# col_stats / sum_col scenario server column (lib.sh); the columns are listed in measure().

scen_desc() {
	case $1 in
	fanout) echo "fanout: $FANOUT_SUBS subscribers, 1 publisher, $INFLIGHT in flight ($WINDOW)" ;;
	fanout-big) echo "fanout-big: $FANOUT_BIG_SUBS subscribers, 1 publisher, $INFLIGHT in flight ($WINDOW)" ;;
	rooms-r*) echo "rooms: $ROOMS_CLIENTS clients in $ROOMS rooms, ${1#rooms-r} msg/s each" ;;
	esac
}

SUMMARY="$TMP/summary.md"
FAIL=0
{
	echo
	echo "## WebSocket pub/sub benchmark: ${SERVERS[*]}"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · herald $GIT_REV · bun $BUN_VERSION · $(nproc) CPUs · $(uname -r)"
	echo "wsload on 127.0.0.1 · $ROUNDS round(s) × ${DURATION_S}s after ${WARMUP_S}s warm-up · payload $BYTES B" \
		"text · wsload -t $THREADS · Herald --threads $WORKERS $( ((PIN)) && echo pinned || echo --no-pin)" \
		"--no-compression · Bun single-threaded, never pinned · deliveries/s = messages received by all" \
		"subscribers in the measured window · CPU = server utime+stime per delivery · lost = owed minus" \
		"received after ${SETTLE}s of settling, summed over rounds · machine ${IDLE_BUSY}% busy before start"
	echo
	echo "| scenario | server | deliveries/s median (min-max) | published/s | p50 us | p99 us | p99.9 us | server CPU us/delivery | wsload CPU % of a core (us/delivery) | lost | other load % |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	JSON_LINES=()
	for s in "${RUN_SCEN[@]}"; do
		for name in "${SERVERS[@]}"; do
			read -r rate rmin rmax < <(col_stats "$s" "$name" 4)
			read -r p50 _ _ < <(col_stats "$s" "$name" 5)
			read -r p99 _ _ < <(col_stats "$s" "$name" 6)
			read -r p999 _ _ < <(col_stats "$s" "$name" 7)
			read -r cpu _ _ < <(col_stats "$s" "$name" 8)
			read -r gen _ _ < <(col_stats "$s" "$name" 9)
			read -r foreign _ _ < <(col_stats "$s" "$name" 10)
			read -r genus _ _ < <(col_stats "$s" "$name" 12)
			read -r pubs _ _ < <(col_stats "$s" "$name" 14)
			errs=$(sum_col "$s" "$name" 11)
			lost=$(sum_col "$s" "$name" 13)
			owed=$(sum_col "$s" "$name" 15)
			((lost == 0)) || FAIL=1
			printf '| %s | %s | %.0f (%.0f-%.0f) | %.0f | %.0f | %.0f | %.0f | %.3f | %.0f (%.3f) | %s | %.1f |\n' \
				"$s" "$name" "$rate" "$rmin" "$rmax" "$pubs" "$p50" "$p99" "$p999" "$cpu" "$gen" "$genus" \
				"$lost" "$foreign"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","server":"%s","deliveries_per_s_median":%.1f,"deliveries_per_s_min":%.1f,"deliveries_per_s_max":%.1f,"published_per_s_median":%.1f,"p50_us_median":%.0f,"p99_us_median":%.0f,"p999_us_median":%.0f,"cpu_us_per_delivery_median":%.4f,"wsload_cpu_pct_median":%.1f,"wsload_cpu_us_per_delivery_median":%.4f,"other_cpu_pct_median":%.1f,"lost":%s,"expected":%s,"errors":%s,"rounds":%d,"duration_s":%d,"bytes":%d,"workers":%d,"pin":%d,"rev":"%s"}' \
				"$s" "$name" "$rate" "$rmin" "$rmax" "$pubs" "$p50" "$p99" "$p999" "$cpu" "$gen" "$genus" "$foreign" \
				"$lost" "$owed" "$errs" "$ROUNDS" "$DURATION_S" "$BYTES" \
				"$([[ $name == bun ]] && echo 1 || echo "$WORKERS")" "$PIN" "$GIT_REV")")
		done
		if [[ -n $B_NAME ]]; then
			read -r a_rate _ _ < <(col_stats "$s" "$A_NAME" 4)
			read -r b_rate _ _ < <(col_stats "$s" "$B_NAME" 4)
			read -r a_p99 _ _ < <(col_stats "$s" "$A_NAME" 6)
			read -r b_p99 _ _ < <(col_stats "$s" "$B_NAME" 6)
			read -r a_cpu _ _ < <(col_stats "$s" "$A_NAME" 8)
			read -r b_cpu _ _ < <(col_stats "$s" "$B_NAME" 8)
			read -r r_rate r_p99 r_cpu ok < <(awk -v ar="$a_rate" -v br="$b_rate" -v ap="$a_p99" -v bp="$b_p99" \
				-v ac="$a_cpu" -v bc="$b_cpu" 'BEGIN {
				rr = (br > 0) ? ar / br : 0; rp = (bp > 0) ? ap / bp : 0; rc = (bc > 0) ? ac / bc : 0
				printf "%.3f %.3f %.3f %d\n", rr, rp, rc, (rr >= 1.0) }')
			# rooms publish at a fixed rate: both servers deliver the same, so only fanout's
			# deliveries/s is a throughput target.
			[[ $s == rooms-* ]] || ((ok)) || FAIL=1
			printf '| %s | **%s/%s** | **%s** | | | **%s** | | **%s** | | | |\n' "$s" "$A_NAME" "$B_NAME" \
				"$r_rate" "$r_p99" "$r_cpu"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","ratio":"%s/%s","deliveries_per_s":%s,"p99":%s,"cpu_us_per_delivery":%s,"pin":%d,"rev":"%s"}' \
				"$s" "$A_NAME" "$B_NAME" "$r_rate" "$r_p99" "$r_cpu" "$PIN" "$GIT_REV")")
		fi
	done
	echo
	for s in "${RUN_SCEN[@]}"; do echo "- $(scen_desc "$s")"; done
	echo
	echo "Ratio rows: deliveries/s (higher is better; in rooms the rate is fixed, so it only shows" \
		"whether both kept up), p99 and CPU us/delivery (lower is better). Herald answers every" \
		"publication with an ack and wraps each delivery in its JSON envelope; bun-pubsub.js does" \
		"neither. wsload shares the $(nproc) CPUs with the server: near 100% of a core it, not the" \
		"server, may be the limit (try THREADS=2)."
	[[ $B_NAME != bun ]] || echo "Bun serves from one thread by design; Herald uses $WORKERS."
	[[ -n $B_NAME ]] || echo "Bun was not available: Herald alone, no ratios."
	noisy_note 10 "deliveries/s and latency" "CPU us/delivery"
	echo
	printf '%s\n' "${JSON_LINES[@]}"
} >"$SUMMARY"
cat "$SUMMARY"

save_results pubsub "$SUMMARY" "$TMP"/runs/*.txt

if ((FAIL)) && [[ $STRICT == 1 ]]; then
	echo "pubsub.sh: target missed or deliveries lost (STRICT=1)" >&2
	exit 1
fi
