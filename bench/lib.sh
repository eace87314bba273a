# bench/lib.sh - what bench/http.sh, bench/echo.sh and bench/pubsub.sh share. Sourced, not run:
#
#   BENCH_NAME=echo.sh                      # prefix of errors, warnings and cleanup messages
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It gives: messages (die, warn, log, usage), argument checks (is_uint, is_num, dur_secs), process
# and CPU sampling from /proc (alive, tree_pids, cpu_ticks, sys_ticks, machine_busy), free ports
# (port_open, pick_port), the temp dir and server lifecycle with bounded waits (bench_tmp,
# bench_traps, start_server, wait_ready, stop_server; cleanup on exit fails the script when a server
# process or port is left behind), wsload and bun discovery, and the report's arithmetic over the
# script's TSV of runs (col_stats, pair_stats and their med_min_max, sum_col, over_limit, noisy_note, save_results).
#
# Globals it reads: BENCH_NAME, TMP, RES, KEEP_TMP, STARTUP_TIMEOUT, FOREIGN_WARN, RESULTS_DIR,
# BG_PIDS (background jobs that cleanup stops with their children).
# Globals it sets: REPO, PID[name], PORT[name], PIDS_SEEN[pid], REPLY (pick_port), IDLE_BUSY.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BENCH_NAME:=bench}"
CLK_TCK=$(getconf CLK_TCK)

# ---- messages --------------------------------------------------------------------------------
die() {
	echo "$BENCH_NAME: error: $*" >&2
	exit 1
}
warn() { echo "$BENCH_NAME: warning: $*" >&2; }
log() { echo "== $*" >&2; }

# The main script's header comment, from line 2 down to `set -euo`.
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[-1]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ---- argument checks -------------------------------------------------------------------------
is_uint() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v r="$1" 'BEGIN { exit !(r > 0) }'; }

# Durations: N, Ns, Nm, Nh. Prints whole seconds.
dur_secs() {
	[[ $1 =~ ^([0-9]+)([smh]?)$ ]] || die "bad duration '$1' (use e.g. 10s, 1m)"
	local n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	m) n=$((n * 60)) ;;
	h) n=$((n * 3600)) ;;
	esac
	echo "$n"
}

# over_limit value limit: true when value > limit (decimals allowed).
over_limit() { awk -v f="$1" -v lim="$2" 'BEGIN { exit !(f > lim) }'; }

# ---- processes and CPU -----------------------------------------------------------------------
alive() { # pid: running and not a zombie
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st%% *} != Z ]]
}

# The pid and all its descendants (nginx: master and workers; Herald: itself, threads included).
tree_pids() {
	local p
	local -a c
	for p in "$@"; do
		echo "$p"
		mapfile -t c < <(pgrep -P "$p" 2>/dev/null || true)
		((${#c[@]} == 0)) || tree_pids "${c[@]}"
	done
}

# Sum of utime+stime over a pid tree, in clock ticks.
cpu_ticks() {
	local total=0 p st f
	for p in $(tree_pids "$1"); do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*) }
		read -r -a f <<<"$st"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

# VmRSS of a pid tree in KiB (summed), from /proc/PID/status.
rss_kib() {
	local total=0 p v
	for p in $(tree_pids "$1"); do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# Machine-wide "busy total" CPU ticks from /proc/stat (all CPUs). SYS_TICKS_IRQ=1 (the default,
# as in wsload's other_cpu_pct): busy is user+nice+system+irq+softirq, because the kernel charges
# loopback TCP softirq work to the processes' stime too. SYS_TICKS_IRQ=0 (http.sh): busy is
# user+nice+system only; irq/softirq and steal are left out of busy.
sys_ticks() {
	if [[ ${SYS_TICKS_IRQ:-1} == 1 ]]; then
		awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9; exit }' /proc/stat
	else
		awk '/^cpu / { b = $2 + $3 + $4; print b, b + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
	fi
}

# How busy the machine is over one second, before anything starts: sets IDLE_BUSY (%), warns
# above FOREIGN_WARN.
machine_busy() {
	local b0 t0 b1 t1
	read -r b0 t0 < <(sys_ticks)
	sleep 1
	read -r b1 t1 < <(sys_ticks)
	IDLE_BUSY=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.1f", (t > 0) ? b * 100 / t : 0 }')
	if over_limit "$IDLE_BUSY" "$FOREIGN_WARN"; then
		warn "the machine is already $IDLE_BUSY% busy before the benchmark; results will be noisy"
	fi
}

# ---- ports -----------------------------------------------------------------------------------
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The whole answer (head and body) to GET PATH on 127.0.0.1:PORT, within 5 s; nothing if there is
# none. Bash's /dev/tcp: the machine needs no HTTP client.
http_get() { # port path
	# shellcheck disable=SC2016 # the inner script takes the port and path as $1 and $2
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
		cat <&3' _ "$1" "$2" 2>/dev/null || true
}

USED_PORTS=" "
pick_port() { # sets REPLY
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range, so the load's own ports never collide
		[[ $USED_PORTS == *" $p "* ]] && continue
		if ! port_open "$p"; then
			USED_PORTS+="$p "
			REPLY=$p
			return 0
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

# ---- temp dir, servers, cleanup --------------------------------------------------------------
declare -gA PID=() PORT=() PIDS_SEEN=()
declare -ga BG_PIDS=() # background jobs of the script (pubsub.sh SIDE=1): stopped by cleanup

# bench_tmp prefix: makes TMP and the TSV of runs (RES), empty.
bench_tmp() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	RES="$TMP/results.tsv"
	: >"$RES"
}

stop_server() {
	local name=$1 pid=${PID[$1]:-} p i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		warn "$name (pid $pid) ignored SIGTERM for 5s; killing"
		for p in $(tree_pids "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
	fi
	wait "$pid" 2>/dev/null || true
	unset "PID[$name]"
}

cleanup() {
	local rc=$? name p bg left=()
	trap - EXIT INT TERM
	# Their wsloads run under timeout, in a process group of their own: each one's tree goes.
	for bg in "${BG_PIDS[@]}"; do
		for p in $(tree_pids "$bg"); do kill -TERM "$p" 2>/dev/null || true; done
	done
	for name in "${!PID[@]}"; do stop_server "$name"; done
	sleep 0.2
	for p in "${!PIDS_SEEN[@]}"; do
		if alive "$p"; then
			left+=("$p")
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	((${#left[@]} == 0)) || { echo "$BENCH_NAME: leftover server processes killed: ${left[*]}" >&2; rc=1; }
	for name in "${!PORT[@]}"; do
		if port_open "${PORT[$name]}"; then
			echo "$BENCH_NAME: port ${PORT[$name]} ($name) still accepts connections after shutdown" >&2
			rc=1
		fi
	done
	# A run that failed half-way keeps what it measured.
	if ((rc != 0)) && [[ -n ${RESULTS_DIR:-} && -s ${RES:-} ]]; then
		p="$RESULTS_DIR/${BENCH_NAME%.sh}-$(date -u +%Y%m%d-%H%M%S)-partial"
		mkdir -p "$p" && cp "$RES" "$p/runs.tsv" && cp "$TMP"/*.jsonl "$TMP"/runs/* "$p/" 2>/dev/null
		echo "$BENCH_NAME: the runs measured before the failure are in $p/" >&2
	fi
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "$BENCH_NAME: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}

bench_traps() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# wait_ready name logfile check: waits (STARTUP_TIMEOUT) for the server's port to accept, then runs
# `check name port`, which dies if the server does not work. Every pid of the server's tree is
# remembered, so that cleanup can tell if one is left behind.
wait_ready() {
	local name=$1 log=$2 check=$3 pid=${PID[$1]} port=${PORT[$1]} i p
	for ((i = 0; i < STARTUP_TIMEOUT * 10; i++)); do
		if ! alive "$pid"; then
			cat "$log" >&2 || true
			die "$name exited during startup (log above)"
		fi
		if port_open "$port"; then
			"$check" "$name" "$port"
			for p in $(tree_pids "$pid"); do PIDS_SEEN[$p]=1; done
			log "$name ready on 127.0.0.1:$port (pid $pid)"
			return 0
		fi
		sleep 0.1
	done
	cat "$log" >&2 || true
	die "$name did not accept connections on 127.0.0.1:$port within ${STARTUP_TIMEOUT}s"
}

# start_server name check cmd...: picks a port, runs cmd in the background (every @PORT@ in its
# arguments replaced by the port; output to $TMP/name.log) and waits until it is ready.
start_server() {
	local name=$1 check=$2 log="$TMP/$1.log" a
	local -a cmd=()
	shift 2
	pick_port
	PORT[$name]=$REPLY
	for a in "$@"; do cmd+=("${a//@PORT@/${PORT[$name]}}"); done
	"${cmd[@]}" >"$log" 2>&1 &
	PID[$name]=$!
	wait_ready "$name" "$log" "$check"
}

# Scheduling policies: SCHED (batch, Herald's default, or normal: Herald --sched normal) and
# PEER_SCHED (normal, the peers' default, or batch: every peer under `chrt -b 0`, to see what the
# policy alone would give them). Sets HERALD_SCHED (flags for Herald) and PEER_CHRT (a prefix).
# shellcheck disable=SC2034 # both are for the scripts that source this file
sched_knobs() {
	SCHED=${SCHED:-batch}
	PEER_SCHED=${PEER_SCHED:-normal}
	[[ $SCHED == batch || $SCHED == normal ]] || die "SCHED must be batch or normal (got '$SCHED')"
	[[ $PEER_SCHED == batch || $PEER_SCHED == normal ]] ||
		die "PEER_SCHED must be batch or normal (got '$PEER_SCHED')"
	HERALD_SCHED=() PEER_CHRT=()
	[[ $SCHED == batch ]] || HERALD_SCHED=(--sched normal)
	if [[ $PEER_SCHED == batch ]]; then
		command -v chrt >/dev/null || die "PEER_SCHED=batch needs chrt (util-linux)"
		PEER_CHRT=(chrt -b 0)
	fi
}

# ---- tools -----------------------------------------------------------------------------------
# The load generator is the one thing the scripts build; make rebuilds it only when stale.
build_wsload() {
	if [[ $WSLOAD_BIN == "$REPO/build/wsload" ]]; then
		timeout 120 make -s -C "$REPO" build/wsload >&2 || die "could not build build/wsload (make build/wsload)"
	fi
	[[ -x $WSLOAD_BIN ]] || die "wsload not found: $WSLOAD_BIN"
}

# bun_ok: BUN_BIN runs.
bun_ok() { [[ -x $BUN_BIN ]] && timeout 10 "$BUN_BIN" --version >/dev/null 2>&1; }

git_rev() {
	local rev
	rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[[ -z $(git -C "$REPO" status --porcelain -- src include 2>/dev/null) ]] || rev+="-dirty"
	echo "$rev"
}

# json_field file key: the value of "key" in the file's JSON line (numbers and null only).
json_field() { sed -n "s/^JSON .*\"$2\":\([^,}]*\).*/\1/p" "$1" | head -n1; }

# ---- report ----------------------------------------------------------------------------------
# med_min_max decimals -> "median min max" of the numbers on stdin, one per line, with that many
# decimals; "0 0 0" when there are none.
med_min_max() {
	sort -g | awk -v d="$1" '{ v[NR] = $1 }
		END {
			if (NR == 0) { print "0 0 0"; exit }
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			f = "%." d "f"
			printf f " " f " " f "\n", med, v[1], v[NR]
		}'
}
# col_stats key1 key2 column -> "median min max" of that column of $RES over the rows whose first
# two columns are key1 and key2.
col_stats() {
	awk -F'\t' -v a="$1" -v b="$2" -v c="$3" '$1 == a && $2 == b { print $c }' "$RES" | med_min_max 6
}
# pair_stats key1 serverA serverB column -> "median min max" of A's value over B's in the same
# round (column 3), over the rounds both ran; "0 0 0" when there are none. The two runs of a round
# are minutes apart, so each ratio is taken on the same machine state, while the ratio of the two
# medians can pair a fast round of one with a slow round of the other (this machine's speed drifts
# by up to 2x).
pair_stats() {
	awk -F'\t' -v k="$1" -v a="$2" -v b="$3" -v c="$4" '
		$1 == k && $2 == a { va[$3] = $c }
		$1 == k && $2 == b { vb[$3] = $c }
		END { for (r in va) if ((r in vb) && vb[r] > 0) print va[r] / vb[r] }' "$RES" | med_min_max 3
}
# sum_col key1 key2 column -> the sum of that column over the same rows.
sum_col() { awk -F'\t' -v a="$1" -v b="$2" -v c="$3" '$1 == a && $2 == b { t += $c } END { printf "%.0f\n", t + 0 }' "$RES"; }

# noisy_note column what-unreliable what-less-so: the **Noisy** paragraph when the other-load
# column of $RES went over FOREIGN_WARN in some run (prints nothing otherwise).
noisy_note() {
	local col=$1
	if awk -F'\t' -v lim="$FOREIGN_WARN" -v c="$col" '$c > lim { bad = 1 } END { exit !bad }' "$RES"; then
		echo
		echo "**Noisy:** other processes used more than $FOREIGN_WARN% of the CPU during some runs (busiest:" \
			"$(sort -t$'\t' -k"$col" -g "$RES" | tail -n1 | cut -f"$col")%); $2 are unreliable, $3 less so."
	fi
}

# save_results kind summary raw-files...: copies the summary, $RES and the raw outputs to
# $RESULTS_DIR/kind-<UTC time>/ (nothing when RESULTS_DIR is empty). Sets SAVED_DIR.
save_results() {
	local kind=$1 summary=$2 stamp
	shift 2
	SAVED_DIR=
	[[ -n $RESULTS_DIR ]] || return 0
	stamp=$(date -u +%Y%m%d-%H%M%S)
	SAVED_DIR="$RESULTS_DIR/$kind-$stamp"
	mkdir -p "$SAVED_DIR"
	cp "$summary" "$SAVED_DIR/summary.md"
	cp "$RES" "$SAVED_DIR/runs.tsv"
	(($# == 0)) || cp "$@" "$SAVED_DIR/"
	log "results saved in $SAVED_DIR/"
}
