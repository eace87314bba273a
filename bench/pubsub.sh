#!/usr/bin/env bash
# Pub/sub benchmark: bench/wsload's fanout, rooms and connect scenarios against Herald's broker (/ws,
# herald.v1) and against its peers on 127.0.0.1: Bun (bench/peers/bun-pubsub.js), Node.js with ws
# (bench/peers/node-ws-pubsub.js), nats-server with its WebSocket listener (bench/peers/nats.conf)
# and nchan on nginx (bench/peers/nchan.conf.in).
#
#   bench/pubsub.sh [--rounds N] [--duration D] [--scenarios LIST] [--peers LIST] [--workers N]
#                   [--herald PATH] [--quick]
#
# Scenarios (SCENARIOS, default "fanout fanout-big rooms connect"):
#   fanout      FANOUT_SUBS (1000) subscribers of one topic, one publisher keeping INFLIGHT (16)
#               messages of BYTES (64) in flight (in flight: not yet delivered to every subscriber;
#               WINDOW=probe: to the first one only)
#   fanout-big  the same with FANOUT_BIG_SUBS (10000) subscribers; skipped with a warning when the
#               file descriptor limit cannot be raised enough; 0 turns it off
#   sweep       one fanout per subscriber count in FANOUT_SWEEP ("100 5000"), named
#               fanout-s<N>: throughput against subscriber count
#   rooms       ROOMS_CLIENTS (5000) clients in ROOMS (500) rooms, each subscribed to its room and
#               publishing to it RATE (1) messages/s; RATES="1 2 4" runs one rooms scenario per rate
#   connect     CONNECT_CONNS (5000) connections opened and subscribed (CONNECT_TOPICS "one": all to
#               one topic; "each": each to its own; "one each": both), then idle CONNECT_IDLE (2) s:
#               connections/s and the server's RSS growth per idle subscribed connection (KiB, from
#               /proc/PID/status VmRSS before the first connect and after the idle time; every
#               connect run starts the server afresh, lets it idle CONNECT_SETTLE (2) s, then opens
#               and closes one warm-up connection before the baseline, so that what a server
#               touches once on its first connection is not counted per connection)
# Peers (PEERS, default "bun node nats nchan"; a peer that is not installed is skipped with a
# warning): bun (bench/peers/node_modules/.bin/bun, `npm ci` in bench/peers), node (node and ws from
# bench/peers/node_modules), nats (nats-server, Debian), nchan (nginx with libnginx-mod-nchan,
# Debian). Every option can also be given in the environment: ROUNDS (3), DURATION (10s),
# SCENARIOS, PEERS, WORKERS (Herald threads, nproc), HERALD_BIN (build/herald), QUICK=1 (1 round of
# 3 s; 200 subscribers, 2000 for fanout-big, 500 clients in 50 rooms, 1000 connections, unless
# given).
# Further knobs: THREADS (wsload threads: 2, as one saturates at 5,000 subscribers; 1 with SIDE=1),
# PIN (1; 0: Herald --no-pin, nchan unpinned), WARMUP (2s; 1s with QUICK), PAUSE (seconds between
# runs, 2), SETTLE (seconds wsload waits for late deliveries, 5), CONNECT_TIMEOUT (seconds to open
# and subscribe all connections, 30), STARTUP_TIMEOUT (10), RESULTS_DIR (bench/results; empty: write
# nothing), CHARTS (1: draw PNG charts with gnuplot into the results directory when gnuplot is
# installed), KEEP_TMP=1, SPIN_US (50: wsload --spin-us, polling without sleeping for that long after
# its last events, which keeps the wake-ups of a sleeping reader off the server's CPU time; 0: the
# generator sleeps whenever it has nothing to read, as before ec70263; see bench/README.md),
# FOREIGN_WARN (10 %), STRICT=1 (exit 1 when Herald/peer deliveries/s misses 1.0 in a fanout
# scenario, or a delivery was lost), BUN_BIN, NODE_BIN, NATS_BIN, NGINX_BIN, NCHAN_MODULE, WSLOAD_BIN
# (build/wsload, made with `make build/wsload`), HERALD_REV (the revision HERALD_BIN was built
# from, for the report, when it is not this checkout's build/herald), BENCH_SELFTEST=1 (a second
# Herald in the peers' place: HERALD_B_BIN, by default HERALD_BIN; with SIDE=1 an A/B of two builds,
# HERALD_B_REV naming the second; HERALD_B_ARGS, options for the second only, e.g. --no-uring).
#
# SIDE=1 (or --side): side by side instead of in turn. Herald (one worker) and exactly one peer
# serve the same scenario at the same time, both confined to one CPU (SIDE_CPUS, "0 1": the first),
# each with a wsload of its own, both wsloads on the other CPU; the wsloads start their load
# together once both are connected and subscribed. The two servers share their CPU over the same
# seconds, so the ratio of their CPU per delivery does not move with the machine's speed,
# which drifts by up to 2x between runs minutes apart here; throughput is each one's half of a core.
# Fan-out and rooms scenarios only; "other load" then includes the other server and its wsload.
#
# Herald and wsload run from copies taken at the start, so a rebuild during the run changes
# nothing. Only 127.0.0.1 is used (wsload spreads its connections over 127.0.0.1-127.0.0.N when
# the ephemeral port range is too small); every wsload run and every wait is bounded by `timeout`.
# SCHED (batch: Herald's default; normal: --sched normal) and PEER_SCHED (normal; batch: the
# peers under chrt -b 0): the servers' scheduling policies (sched_knobs in lib.sh).
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
	--peers) PEERS=${2?}; shift 2 ;;
	--workers) WORKERS=${2:?}; shift 2 ;;
	--herald) HERALD_BIN=${2:?}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--side) SIDE=1; shift ;;
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
	CONNECT_CONNS=${CONNECT_CONNS:-1000}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SCENARIOS=${SCENARIOS:-fanout fanout-big rooms connect}
PEERS=${PEERS-bun node nats nchan}
FANOUT_SUBS=${FANOUT_SUBS:-1000}
FANOUT_BIG_SUBS=${FANOUT_BIG_SUBS:-10000}
FANOUT_SWEEP=${FANOUT_SWEEP:-100 5000}
INFLIGHT=${INFLIGHT:-16}
BYTES=${BYTES:-64}
WINDOW=${WINDOW:-all}
ROOMS_CLIENTS=${ROOMS_CLIENTS:-5000}
ROOMS=${ROOMS:-500}
RATE=${RATE:-1}
RATES=${RATES:-$RATE}
CONNECT_CONNS=${CONNECT_CONNS:-5000}
CONNECT_TOPICS=${CONNECT_TOPICS:-one}
CONNECT_IDLE=${CONNECT_IDLE:-2}
CONNECT_SETTLE=${CONNECT_SETTLE:-2}
# Two wsload threads: on one, wsload reaches 96-97% of a core at 5,000 and 10,000 subscribers
# next to Herald or Bun, and deliveries/s then measures wsload, not the server. SIDE=1 gives the
# wsloads one CPU between them: one thread each.
if [[ ${SIDE:-0} == 1 ]]; then THREADS=${THREADS:-1}; else THREADS=${THREADS:-2}; fi
WORKERS_GIVEN=${WORKERS:-}
WORKERS=${WORKERS:-$(nproc)}
HERALD_BIN=${HERALD_BIN:-$REPO/build/herald}
WSLOAD_BIN=${WSLOAD_BIN:-$REPO/build/wsload}
BUN_BIN=${BUN_BIN:-$REPO/bench/peers/node_modules/.bin/bun}
BUN_SCRIPT="$REPO/bench/peers/bun-pubsub.js"
NODE_BIN=${NODE_BIN:-$(command -v node || echo node)}
NODE_SCRIPT="$REPO/bench/peers/node-ws-pubsub.js"
NATS_BIN=${NATS_BIN:-$(command -v nats-server || echo /usr/bin/nats-server)}
NATS_CONF="$REPO/bench/peers/nats.conf"
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
NCHAN_MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}
NCHAN_TEMPLATE="$REPO/bench/peers/nchan.conf.in"
PAUSE=${PAUSE:-2}
SETTLE=${SETTLE:-5}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-10}
RESULTS_DIR=${RESULTS_DIR-$REPO/bench/results}
CHARTS=${CHARTS:-1}
STRICT=${STRICT:-0}
KEEP_TMP=${KEEP_TMP:-0}
FOREIGN_WARN=${FOREIGN_WARN:-10}
BENCH_SELFTEST=${BENCH_SELFTEST:-0}
PIN=${PIN:-1}
sched_knobs # SCHED (batch) and PEER_SCHED (normal): the servers' scheduling policies (lib.sh)
SIDE=${SIDE:-0}
SIDE_CPUS=${SIDE_CPUS:-0 1}

[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1 (got '$PIN')"
[[ $SIDE == 0 || $SIDE == 1 ]] || die "SIDE must be 0 or 1 (got '$SIDE')"
SERVER_CPU='' GEN_CPU=''
if ((SIDE)); then
	read -r SERVER_CPU GEN_CPU _ <<<"$SIDE_CPUS"
	[[ $SERVER_CPU =~ ^[0-9]+$ && $GEN_CPU =~ ^[0-9]+$ && $SERVER_CPU != "$GEN_CPU" ]] ||
		die "SIDE_CPUS must name two different CPUs (got '$SIDE_CPUS')"
	command -v taskset >/dev/null 2>&1 || die "SIDE=1 needs taskset (util-linux)"
	taskset -c "$SERVER_CPU,$GEN_CPU" true 2>/dev/null || die "SIDE_CPUS '$SIDE_CPUS': not CPUs this process may use"
	[[ ${WORKERS_GIVEN:-1} == 1 ]] || warn "SIDE=1: Herald runs with one worker (WORKERS=$WORKERS_GIVEN ignored)"
	WORKERS=1
	PIN=1
fi
[[ $WINDOW == all || $WINDOW == probe ]] || die "WINDOW must be all or probe (got '$WINDOW')"
SPIN_US=${SPIN_US:-50}
[[ $SPIN_US =~ ^(0|[1-9][0-9]{0,5}|1000000)$ ]] && ((SPIN_US <= 1000000)) ||
	die "SPIN_US must be a number of microseconds, 0 to 1000000 (got '$SPIN_US')"
for v in ROUNDS FANOUT_SUBS INFLIGHT BYTES ROOMS_CLIENTS ROOMS THREADS WORKERS STARTUP_TIMEOUT CONNECT_TIMEOUT SETTLE PAUSE CONNECT_CONNS CONNECT_IDLE; do
	is_uint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
[[ $FANOUT_BIG_SUBS =~ ^[0-9]+$ ]] || die "FANOUT_BIG_SUBS must be a number (got '$FANOUT_BIG_SUBS')"
((BYTES >= 48)) || die "BYTES must be at least 48 (the payload carries a sequence number, a timestamp and the publisher)"
((ROOMS <= ROOMS_CLIENTS)) || die "ROOMS ($ROOMS) must not exceed ROOMS_CLIENTS ($ROOMS_CLIENTS)"
for r in $RATES; do is_num "$r" || die "bad rate '$r' in RATES (messages/s per client)"; done
for n in $FANOUT_SWEEP; do is_uint "$n" || die "bad subscriber count '$n' in FANOUT_SWEEP"; done
for t in $CONNECT_TOPICS; do [[ $t == one || $t == each ]] || die "CONNECT_TOPICS: 'one' and/or 'each' (got '$t')"; done

DURATION_S=$(dur_secs "$DURATION")
WARMUP_S=$(dur_secs "$WARMUP")
((DURATION_S > 0)) || die "DURATION must be positive"

# The scenario list: fanout, fanout-big, fanout-s<N>, rooms-r<rate>, connect-one, connect-each.
RUN_SCEN=()
for s in $SCENARIOS; do
	case $s in
	fanout) RUN_SCEN+=(fanout) ;;
	fanout-big) ((FANOUT_BIG_SUBS == 0)) || RUN_SCEN+=(fanout-big) ;;
	sweep) for n in $FANOUT_SWEEP; do RUN_SCEN+=("fanout-s$n"); done ;;
	rooms) for r in $RATES; do RUN_SCEN+=("rooms-r$r"); done ;;
	connect)
		if ((SIDE)); then
			warn "SIDE=1: connect skipped (one server's RSS and connection rate, not a shared CPU's)"
		else
			for t in $CONNECT_TOPICS; do RUN_SCEN+=("connect-$t"); done
		fi
		;;
	*) die "unknown scenario '$s' (fanout, fanout-big, sweep, rooms, connect)" ;;
	esac
done

# Connections a scenario opens.
scen_conns() {
	case $1 in
	fanout) echo $((FANOUT_SUBS + 1)) ;;
	fanout-big) echo $((FANOUT_BIG_SUBS + 1)) ;;
	fanout-s*) echo $((${1#fanout-s} + 1)) ;;
	rooms-*) echo "$ROOMS_CLIENTS" ;;
	connect-*) echo "$CONNECT_CONNS" ;;
	esac
}
is_connect() { [[ $1 == connect-* ]]; }

# ---- limits: file descriptors and source ports -----------------------------------------------
# Each side of every connection is a descriptor in wsload and in the server, and the script's
# children inherit its limit.
need_fds() { echo $(($1 + 256)); }
MAX_CONNS=0
for s in "${RUN_SCEN[@]}"; do
	n=$(scen_conns "$s")
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
	n=$(scen_conns "$s")
	if fits "$n"; then
		kept+=("$s")
	elif [[ $s == fanout-big || $s == fanout-s* ]]; then
		warn "$s skipped: $n connections need $(need_fds "$n") file descriptors, the limit is $FD_LIMIT"
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

# ---- tools and peers -------------------------------------------------------------------------
command -v timeout >/dev/null 2>&1 || die "timeout not found (coreutils)"
[[ -x $HERALD_BIN ]] || die "Herald binary not found or not executable: $HERALD_BIN (build it with 'make' first, or set HERALD_BIN)"
build_wsload

# peer_ok name: the peer can run here (prints why not on stderr otherwise).
peer_ok() {
	case $1 in
	bun)
		bun_ok && [[ -r $BUN_SCRIPT ]] ||
			{ warn "bun not found or not runnable at $BUN_BIN (run 'npm ci' in bench/peers, or set BUN_BIN): skipped"; return 1; }
		;;
	node)
		command -v "$NODE_BIN" >/dev/null 2>&1 && [[ -d $REPO/bench/peers/node_modules/ws ]] ||
			{ warn "node or bench/peers/node_modules/ws missing (install node, run 'npm ci' in bench/peers): node skipped"; return 1; }
		;;
	nats)
		[[ -x $NATS_BIN ]] && [[ -r $NATS_CONF ]] ||
			{ warn "nats-server not found at $NATS_BIN (scripts/install-deps installs it): skipped"; return 1; }
		;;
	nchan)
		[[ -x $NGINX_BIN && -r $NCHAN_MODULE && -r $NCHAN_TEMPLATE ]] ||
			{ warn "nginx or the nchan module ($NCHAN_MODULE) missing (scripts/install-deps installs libnginx-mod-nchan): skipped"; return 1; }
		;;
	*) die "unknown peer '$1' (bun, node, nats, nchan)" ;;
	esac
}

A_NAME=herald
B_NAMES=()
if [[ $BENCH_SELFTEST == 1 ]]; then
	B_NAMES=(herald-b)
	warn "BENCH_SELFTEST=1: a second Herald stands in for the peers; the ratios say nothing about them"
else
	for p in $PEERS; do
		if peer_ok "$p"; then B_NAMES+=("$p"); fi
	done
fi
SERVERS=("$A_NAME" "${B_NAMES[@]}")
if ((SIDE)); then
	((${#B_NAMES[@]} == 1)) || die "SIDE=1 compares Herald with exactly one peer (PEERS=bun, for instance; available: ${B_NAMES[*]:-none})"
fi
# SIDE=1: servers on one CPU, the wsloads on the other (ON_CPU and GEN_ON prefix their commands).
ON_CPU=() GEN_ON=()
if ((SIDE)); then
	ON_CPU=(taskset -c "$SERVER_CPU")
	GEN_ON=(taskset -c "$GEN_CPU")
fi
((${#B_NAMES[@]} > 0)) || warn "no peer available: Herald runs alone, no ratios"

# ---- temp dir, cleanup -----------------------------------------------------------------------
bench_tmp herald-pubsub-bench
mkdir -p "$TMP/runs" "$TMP/root" # root: Herald's document root, empty (not the source tree's)
: >"$TMP/runs.jsonl"
# Private copies: a rebuild of build/ during the run cannot swap the binaries under it.
cp "$HERALD_BIN" "$TMP/herald"
[[ $BENCH_SELFTEST != 1 ]] || cp "${HERALD_B_BIN:-$HERALD_BIN}" "$TMP/herald-b"
cp "$WSLOAD_BIN" "$TMP/wsload"
WSLOAD="$TMP/wsload"

bench_traps

# ---- servers and their protocols -------------------------------------------------------------
# What wsload sends to each server, and what it skips before the first delivery:
#  - Herald: welcome and subscribe ack (2); it also acks every publication, without the payload
#    marker, so wsload ignores the acks;
#  - Bun and Node: "OK SUB topic" (1);
#  - NATS: CONNECT first (no answer with verbose false), SUB then PING; INFO and the PONG (2); MSG
#    lines come several to a WebSocket frame (--multi);
#  - nchan: the URL names the channel, nothing to send or skip.
CRLF=$'\r\n'
proto_args() { # name -> sets PROTO (array)
	local url="ws://127.0.0.1:${PORT[$1]}"
	case $1 in
	herald*)
		PROTO=(--url "$url/ws" --subprotocol herald.v1 --skip-first 2
			--sub-template '{"op":"sub","topic":"{topic}"}'
			--pub-template '{"op":"pub","topic":"{topic}","data":"{payload}"}')
		;;
	bun | node)
		PROTO=(--url "$url/ws" --skip-first 1 --sub-template 'SUB {topic}' --pub-template 'PUB {topic} {payload}')
		;;
	nats)
		PROTO=(--url "$url/" --skip-first 2 --multi
			--hello-template "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true}$CRLF"
			--sub-template "SUB {topic} 1${CRLF}PING$CRLF" --pub-template "PUB {topic} {len}$CRLF{payload}$CRLF")
		;;
	nchan)
		PROTO=(--url "$url/ps/{topic}" --skip-first 0 --sub-template '' --pub-template '{payload}')
		;;
	esac
}

# --server-pid for every process of the server (nginx: master and workers).
server_pid_args() { # name -> sets SPIDS (array)
	local p
	SPIDS=()
	for p in $(tree_pids "${PID[$1]}" | head -n 8); do SPIDS+=(--server-pid "$p"); done
}

# A short fanout to 2 subscribers that must deliver everything: the server and the templates work.
# Three tries: a freshly started nchan has been seen to hold its first messages for over 0.5 s.
check_pubsub() { # name port
	local name=$1 out="$TMP/$1.check" try
	proto_args "$name"
	for try in 1 2 3; do
		if timeout -k 2 30 "$WSLOAD" --scenario fanout "${PROTO[@]}" --topic "bench.check$try" -c 2 -w 2 \
			-b "$BYTES" -d 1 --warmup 0 --settle 2 --connect-timeout 5 >"$out" 2>&1 &&
			grep -q '^JSON .*"errors":0,.*"lost":0,' "$out"; then
			((try == 1)) || warn "$name: the pub/sub check passed at try $try"
			return 0
		fi
	done
	cat "$out" >&2
	die "$name: the pub/sub check failed 3 times"
}

start_nchan() { # name
	local name=$1 prefix="$TMP/$1" conf user_line affinity='# unpinned (PIN=0)'
	pick_port
	PORT[$name]=$REPLY
	mkdir -p "$prefix"
	chmod 755 "$prefix"
	if ((EUID == 0)); then user_line='user root;'; else user_line='# not root: no user directive'; fi
	((PIN)) && affinity='worker_cpu_affinity auto;'
	((SIDE)) && affinity='# confined by taskset (SIDE=1)'
	conf="$prefix/nginx.conf"
	sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|$WORKERS|" -e "s|@PREFIX@|$prefix|g" \
		-e "s|@AFFINITY@|$affinity|" -e "s|@PORT@|${PORT[$name]}|" -e "s|@MODULE@|$NCHAN_MODULE|" \
		-e "s|@NOFILE@|$FD_LIMIT|g" "$NCHAN_TEMPLATE" >"$conf"
	! grep -v '^[[:space:]]*#' "$conf" | grep '@[A-Z_]*@' >&2 || die "unsubstituted placeholder in $conf"
	timeout 10 "$NGINX_BIN" -t -q -p "$prefix/" -c "$conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 ||
		{ cat "$prefix/stdout.log" "$prefix/error.log" >&2 2>/dev/null || true; die "$name: nginx -t failed"; }
	"${ON_CPU[@]}" "${PEER_CHRT[@]}" "$NGINX_BIN" -p "$prefix/" -c "$conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 &
	PID[$name]=$!
	wait_ready "$name" "$prefix/error.log" check_pubsub
}

start_one() { # name
	local name=$1 pin_flag=()
	case $name in
	herald*)
		((PIN)) || pin_flag=(--no-pin)
		local b_args=()
		[[ $name != herald-b || -z ${HERALD_B_ARGS:-} ]] || read -ra b_args <<<"$HERALD_B_ARGS"
		start_server "$name" check_pubsub "${ON_CPU[@]}" "$TMP/$name" --listen "127.0.0.1:@PORT@" --threads "$WORKERS" \
			--root "$TMP/root" --no-compression --log-level warn "${pin_flag[@]}" "${HERALD_SCHED[@]}" "${b_args[@]}"
		;;
	bun) start_server "$name" check_pubsub "${ON_CPU[@]}" "${PEER_CHRT[@]}" "$BUN_BIN" "$BUN_SCRIPT" @PORT@ ;;
	node) start_server "$name" check_pubsub "${ON_CPU[@]}" "${PEER_CHRT[@]}" "$NODE_BIN" "$NODE_SCRIPT" @PORT@ ;;
	nats)
		# The config reads the WebSocket port from the environment; the client port is another one.
		pick_port
		start_server "$name" check_pubsub "${ON_CPU[@]}" "${PEER_CHRT[@]}" env NATS_WS_PORT=@PORT@ "$NATS_BIN" -c "$NATS_CONF" -p "$REPLY"
		;;
	nchan) start_nchan "$name" ;;
	esac
}

workers_of() {
	case $1 in
	bun | node) echo 1 ;;
	*) echo "$WORKERS" ;;
	esac
}
workers_desc() {
	case $1 in
	bun | node) echo "1 thread" ;;
	nats) if ((SIDE)); then echo "GOMAXPROCS 1 (taskset)"; else echo "GOMAXPROCS $(nproc)"; fi ;;
	nchan) echo "$WORKERS workers" ;;
	*) echo "$WORKERS thread$( ((WORKERS == 1)) || echo s)" ;;
	esac
}

# ---- runs ------------------------------------------------------------------------------------
# scen_args scenario round -> sets SCEN (array): wsload's scenario options.
scen_args() {
	local s=$1 round=$2 n b=()
	case $s in
	fanout | fanout-big | fanout-s*)
		n=$(($(scen_conns "$s") - 1))
		SCEN=(--scenario fanout -c "$n" -w "$INFLIGHT" --window "$WINDOW" --topic "bench.$s.r$round")
		read -ra b < <(bind_args $((n + 1)); echo)
		;;
	rooms-r*)
		SCEN=(--scenario rooms -c "$ROOMS_CLIENTS" --rooms "$ROOMS" --rate "${s#rooms-r}"
			--topic "bench.rooms.r$round")
		read -ra b < <(bind_args "$ROOMS_CLIENTS"; echo)
		;;
	connect-*)
		SCEN=(--scenario connect -c "$CONNECT_CONNS" --topic "bench.$s.r$round")
		[[ $s == connect-one ]] || SCEN+=(--own-topics)
		read -ra b < <(bind_args "$CONNECT_CONNS"; echo)
		;;
	esac
	SCEN+=(-b "$BYTES" "${b[@]}")
}

FIELDS=(msgs_per_s p50_us p99_us p999_us server_cpu_us_per_msg gen_cpu_pct other_cpu_pct errors
	gen_cpu_us_per_msg lost published_per_s expected received messages server_cpu_pct)
CONNECT_FIELDS=(conns_per_s conns_open_per_s kib_per_conn unready other_cpu_pct errors open)

rev_of() { [[ $1 == herald-b ]] && echo "${HERALD_B_REV:-${HERALD_B_BIN:-$GIT_REV}}" || echo "$GIT_REV"; }

run_out() { echo "$TMP/runs/$2-$3-r$1.txt"; } # round scenario name -> wsload's output file

# Herald's delivery and send counters from /metrics, as "deliveries sends", then the wake batches
# each worker served from the shared fan-out queue, in worker order (nothing for the peers, or if
# they cannot be read).
herald_counts() { # name
	[[ $1 == herald* ]] || return 0
	http_get "${PORT[$1]}" /metrics | awk '$1 == "herald_messages_delivered_total" { d = $2 }
		$1 == "herald_sends_total" { s = $2 }
		$1 ~ /^herald_worker_fanout_batches_total[{]/ { b = b " " $2 }
		END { if (d != "" && s != "") print d, s b }'
}

# Deliveries per send over a whole run (warm-up and settling included), from herald_counts taken
# before and after it; empty when there are none.
per_send() { # out
	[[ -s $1.m0 && -s $1.m1 ]] || return 0
	awk 'NR == FNR { d = $1; s = $2; next } { if ($2 > s) printf "%.1f", ($1 - d) / ($2 - s) }' "$1.m0" "$1.m1"
}

# Each worker's share of the fan-out queue's batches over a whole run, in percent and worker
# order ("97 3"), from herald_counts; empty when no batch went through the queue. Shows whether
# steering (README: Fan-out on free CPUs) left the fan-out to one worker.
batch_split() { # out
	[[ -s $1.m0 && -s $1.m1 ]] || return 0
	awk 'NR == FNR { for (i = 3; i <= NF; i++) b0[i] = $i; next }
		{ t = 0; for (i = 3; i <= NF; i++) { d[i] = $i - b0[i]; t += d[i] }
		  if (t > 0) for (i = 3; i <= NF; i++) printf "%s%.0f", (i > 3 ? " " : ""), 100 * d[i] / t }' \
		"$1.m0" "$1.m1"
}

# One wsload run against one server, output in run_out's file; dies if it fails. With a fourth
# argument (SIDE=1), wsload creates GATE.name.ready once connected and subscribed, and starts its
# load when GATE.go appears.
run_load() { # round scenario name [gate]
	local round=$1 s=$2 name=$3 out dur=$DURATION_S warm=$WARMUP_S gated=()
	out=$(run_out "$round" "$s" "$name")
	[[ -z ${4:-} ]] || gated=(--ready-file "$4.$name.ready" --go-file "$4.go")
	if is_connect "$s"; then
		# A fresh server: its RSS before the first connection is its baseline.
		stop_server "$name"
		start_one "$name"
		sleep "$CONNECT_SETTLE" # let a garbage-collected runtime shrink after its start
		# One connection opened, subscribed and closed first, for every server alike: what a fresh
		# server touches once, on its first connection (OpenSSL's SHA-1 code and tables, a
		# runtime's compiled handlers), is not charged to the connections measured.
		proto_args "$name"
		timeout -k 2 30 "$WSLOAD" --scenario connect "${PROTO[@]}" -c 1 --topic "bench.warm.r$round" \
			-d 1 --warmup 0 --settle 0 --connect-timeout 5 >"$TMP/$name.warm" 2>&1 ||
			warn "$name: the warm-up connection failed: $(tail -n1 "$TMP/$name.warm")"
		sleep 1
		dur=$CONNECT_IDLE
		warm=1
	fi
	proto_args "$name"
	scen_args "$s" "$round"
	server_pid_args "$name"
	is_connect "$s" || herald_counts "$name" >"$out.m0"
	if ! "${GEN_ON[@]}" timeout -k 5 $((warm + dur + 2 * CONNECT_TIMEOUT + SETTLE + 30)) "$WSLOAD" \
		"${SCEN[@]}" "${PROTO[@]}" -t "$THREADS" -d "$dur" --warmup "$warm" --spin-us "$SPIN_US" \
		--settle "$SETTLE" --connect-timeout "$CONNECT_TIMEOUT" "${SPIDS[@]}" "${gated[@]}" \
		>"$out" 2>&1; then
		cat "$out" >&2
		die "wsload $s against $name failed or timed out"
	fi
	is_connect "$s" || herald_counts "$name" >"$out.m1"
}

# The run's figures into runs.jsonl and the TSV, and a log line.
record_load() { # round scenario name
	local round=$1 s=$2 name=$3 out f per split extra=""
	local -A v=()
	out=$(run_out "$round" "$s" "$name")
	alive "${PID[$name]}" || die "$name died during $s, round $round"
	per=$(per_send "$out")
	split=$(batch_split "$out")
	printf '{"bench":"ws-pubsub","scenario":"%s","server":"%s","round":%d,"workers":%d,"rev":"%s",%s%s%s\n' \
		"$s" "$name" "$round" "$(workers_of "$name")" "$(rev_of "$name")" \
		"${per:+\"deliveries_per_send\":$per,}" "${split:+\"fanout_batches_pct_by_worker\":[${split// /,}],}" \
		"$(sed -n 's/^JSON {//p' "$out" | head -n1 | sed 's/"scenario":/"wsload_scenario":/')" \
		>>"$TMP/runs.jsonl"
	[[ -z $per ]] || extra=", $per deliveries per send"
	[[ -z $split ]] || extra+=", fan-out batches by worker ${split// //}%"
	if is_connect "$s"; then
		for f in "${CONNECT_FIELDS[@]}"; do
			v[$f]=$(json_field "$out" "$f")
			[[ -n ${v[$f]} && ${v[$f]} != null ]] || { cat "$out" >&2; die "no $f in wsload's output ($out)"; }
		done
		((v[open] > 0)) || die "$name: no connection opened in $s"
		((v[errors] == 0 && v[unready] == 0)) || warn "$s $name (round $round): ${v[errors]} errors," \
			"${v[unready]} subscriptions unconfirmed"
		over_limit "${v[other_cpu_pct]}" "$FOREIGN_WARN" &&
			warn "$s $name (round $round): other processes used ${v[other_cpu_pct]}% of the machine's CPU during the run"
		# Columns as below; 4 is connections/s (opened and subscribed), 13 the unconfirmed, 14
		# connections/s opened only, 16 KiB per connection.
		printf '%s\t%s\t%s\t%s\t0\t0\t0\t0\t0\t%s\t%s\t0\t%s\t%s\t%s\t%s\t0\n' "$s" "$name" "$round" \
			"${v[conns_per_s]}" "${v[other_cpu_pct]}" "${v[errors]}" "${v[unready]}" "${v[conns_open_per_s]}" \
			"${v[open]}" "${v[kib_per_conn]}" >>"$RES"
		log "round $round $s $name: ${v[conns_per_s]} connections/s subscribed (${v[conns_open_per_s]}/s opened)," \
			"${v[kib_per_conn]} KiB per idle subscribed connection, other load ${v[other_cpu_pct]}%"
		return
	fi
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
	((SIDE)) || ! over_limit "${v[other_cpu_pct]}" "$FOREIGN_WARN" ||
		warn "$s $name (round $round): other processes used ${v[other_cpu_pct]}% of the machine's CPU during the run"
	# Columns: 1 scenario, 2 server, 3 round, 4 deliveries/s, 5 p50, 6 p99, 7 p99.9, 8 server CPU
	# us/delivery, 9 wsload % of a core, 10 other load %, 11 errors, 12 wsload us/delivery,
	# 13 lost, 14 published/s, 15 expected, 16 KiB per connection (connect only), 17 server CPU %
	# of a core.
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t0\t%s\n' "$s" "$name" "$round" \
		"${v[msgs_per_s]}" "${v[p50_us]}" "${v[p99_us]}" "${v[p999_us]}" "${v[server_cpu_us_per_msg]}" \
		"${v[gen_cpu_pct]}" "${v[other_cpu_pct]}" "${v[errors]}" "${v[gen_cpu_us_per_msg]}" "${v[lost]}" \
		"${v[published_per_s]}" "${v[expected]}" "${v[server_cpu_pct]}" >>"$RES"
	log "round $round $s $name: ${v[msgs_per_s]} deliveries/s (${v[published_per_s]} published/s)," \
		"p50 ${v[p50_us]} us, p99 ${v[p99_us]} us, server ${v[server_cpu_us_per_msg]} CPU us/delivery," \
		"wsload ${v[gen_cpu_pct]}% of a core, lost ${v[lost]}, other load ${v[other_cpu_pct]}%$extra"
}

measure() { # round scenario name
	run_load "$@"
	record_load "$@"
}

# Every server's wsload at once (SIDE=1), then their figures. The wsloads connect and subscribe
# at their own pace (10,000 connections take a second or more), so each says when it is ready and
# waits for the go: their warm-ups and measured windows then start together.
measure_side() { # round scenario
	local name p rc=0 i ready gate="$TMP/gate-$1-$2"
	BG_PIDS=()
	for name in "${SERVERS[@]}"; do
		run_load "$1" "$2" "$name" "$gate" &
		BG_PIDS+=($!)
	done
	for ((i = 0; i < (2 * CONNECT_TIMEOUT + 10) * 20; i++)); do
		ready=0
		for name in "${SERVERS[@]}"; do [[ ! -e $gate.$name.ready ]] || ready=$((ready + 1)); done
		((ready < ${#SERVERS[@]})) || break
		for p in "${BG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done # one failed
		sleep 0.05
	done
	: >"$gate.go"
	for p in "${BG_PIDS[@]}"; do wait "$p" || rc=1; done
	BG_PIDS=()
	((rc == 0)) || die "side by side: a wsload run of $2, round $1, failed (above)"
	for name in "${SERVERS[@]}"; do record_load "$1" "$2" "$name"; done
}

# ---- main ------------------------------------------------------------------------------------
# The revision Herald was built from: this checkout's, unless HERALD_BIN comes from elsewhere
# (then say HERALD_REV=..., or it is marked unknown).
if [[ -n ${HERALD_REV:-} ]]; then
	GIT_REV=$HERALD_REV
elif [[ $HERALD_BIN -ef $REPO/build/herald ]]; then
	GIT_REV=$(git_rev)
else
	GIT_REV="unknown ($HERALD_BIN; set HERALD_REV)"
fi
declare -A VERSION=([herald]="herald $GIT_REV")
for name in "${B_NAMES[@]}"; do
	case $name in
	bun) VERSION[$name]="bun $(timeout 10 "$BUN_BIN" --version 2>/dev/null || echo unknown)" ;;
	node) VERSION[$name]="node $("$NODE_BIN" --version 2>/dev/null) + ws $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$REPO/bench/peers/node_modules/ws/package.json" | head -n1)" ;;
	nats) VERSION[$name]="nats-server $("$NATS_BIN" --version 2>/dev/null | sed 's/^nats-server: //')" ;;
	nchan) VERSION[$name]="nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?') on $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')" ;;
	herald-b) VERSION[$name]="herald ${HERALD_B_REV:-$([[ -n ${HERALD_B_BIN:-} ]] && echo "$HERALD_B_BIN" || echo "$GIT_REV")}" ;;
	esac
done

log "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP scenarios=${RUN_SCEN[*]} servers=${SERVERS[*]}" \
	"fanout=$FANOUT_SUBS fanout-big=$FANOUT_BIG_SUBS sweep=($FANOUT_SWEEP) inflight=$INFLIGHT window=$WINDOW" \
	"bytes=$BYTES rooms=$ROOMS_CLIENTS/$ROOMS rates=$RATES connect=$CONNECT_CONNS ($CONNECT_TOPICS)" \
	"wsload-threads=$THREADS spin-us=$SPIN_US herald-workers=$WORKERS pin=$PIN sched=$SCHED peer-sched=$PEER_SCHED" \
	"cpus=$(nproc) fd-limit=$FD_LIMIT" \
	"side=$SIDE$( ((SIDE)) && echo " (servers on CPU $SERVER_CPU, wsloads on CPU $GEN_CPU)")"
machine_busy
for name in "${SERVERS[@]}"; do start_one "$name"; done

# Scenario by scenario within a round, the servers alternate; their order flips every round
# (A B C, C B A, ...); with SIDE=1 they run at once. Each run opens fresh connections on a topic
# of its own.
for ((round = 1; round <= ROUNDS; round++)); do
	order=("${SERVERS[@]}")
	((round % 2)) || mapfile -t order < <(printf '%s\n' "${SERVERS[@]}" | tac)
	for s in "${RUN_SCEN[@]}"; do
		if ((SIDE)); then
			sleep "$PAUSE"
			measure_side "$round" "$s"
			continue
		fi
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
	fanout-s*) echo "$1: ${1#fanout-s} subscribers, 1 publisher, $INFLIGHT in flight ($WINDOW)" ;;
	rooms-r*) echo "rooms: $ROOMS_CLIENTS clients in $ROOMS rooms, ${1#rooms-r} msg/s each" ;;
	connect-one) echo "connect-one: $CONNECT_CONNS connections opened and subscribed to one topic, then idle ${CONNECT_IDLE}s" ;;
	connect-each) echo "connect-each: $CONNECT_CONNS connections opened and subscribed each to its own topic, then idle ${CONNECT_IDLE}s" ;;
	esac
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }

SUMMARY="$TMP/summary.md"
FAIL=0
HAVE_LOAD=0 HAVE_CONNECT=0
for s in "${RUN_SCEN[@]}"; do if is_connect "$s"; then HAVE_CONNECT=1; else HAVE_LOAD=1; fi; done
{
	echo
	echo "## WebSocket pub/sub benchmark: ${SERVERS[*]}"
	echo
	vers=()
	for name in "${SERVERS[@]}"; do vers+=("${VERSION[$name]}"); done
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · $(
		IFS=,
		echo "${vers[*]}" | sed 's/,/ · /g'
	) · $(nproc) CPUs · $(uname -r)"
	echo "wsload on 127.0.0.1 · $ROUNDS round(s) × ${DURATION_S}s after ${WARMUP_S}s warm-up · payload $BYTES B" \
		"text · wsload -t $THREADS$( ((SPIN_US)) && echo " --spin-us $SPIN_US") · Herald --threads $WORKERS $( ((PIN)) && echo pinned || echo --no-pin)" \
		"--sched $SCHED --no-compression$([[ $PEER_SCHED == normal ]] || echo " · peers under chrt -b 0")" \
		"· Bun and Node single-threaded, never pinned · deliveries/s = messages received by all" \
		"subscribers in the measured window · CPU = server utime+stime per delivery · lost = owed minus" \
		"received after ${SETTLE}s of settling, summed over rounds · machine ${IDLE_BUSY}% busy before start"
	if ((SIDE)); then
		echo
		echo "**Side by side** (SIDE=1): in every run both servers served the scenario at the same time," \
			"confined to CPU $SERVER_CPU, each with its own wsload, both on CPU $GEN_CPU; each server had" \
			"about half a core, so compare CPU per delivery and the ratios, not absolute throughput with" \
			"the other tables. Other load includes the other server and its wsload."
	fi
	JSON_LINES=()
	if ((HAVE_LOAD)); then
		echo
		echo "| scenario | server | deliveries/s median (min-max) | published/s | p50 us | p99 us | p99.9 us | server CPU us/delivery | server CPU % of a core | wsload CPU % of a core (us/delivery) | lost | other load % |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	fi
	for s in "${RUN_SCEN[@]}"; do
		is_connect "$s" && continue
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
			read -r srvpct _ _ < <(col_stats "$s" "$name" 17)
			errs=$(sum_col "$s" "$name" 11)
			lost=$(sum_col "$s" "$name" 13)
			owed=$(sum_col "$s" "$name" 15)
			((lost == 0)) || FAIL=1
			printf '| %s | %s | %.0f (%.0f-%.0f) | %.0f | %.0f | %.0f | %.0f | %.3f | %.0f | %.0f (%.3f) | %s | %.1f |\n' \
				"$s" "$name" "$rate" "$rmin" "$rmax" "$pubs" "$p50" "$p99" "$p999" "$cpu" "$srvpct" "$gen" "$genus" \
				"$lost" "$foreign"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","server":"%s","deliveries_per_s_median":%.1f,"deliveries_per_s_min":%.1f,"deliveries_per_s_max":%.1f,"published_per_s_median":%.1f,"p50_us_median":%.0f,"p99_us_median":%.0f,"p999_us_median":%.0f,"cpu_us_per_delivery_median":%.4f,"server_cpu_pct_median":%.1f,"wsload_cpu_pct_median":%.1f,"wsload_cpu_us_per_delivery_median":%.4f,"other_cpu_pct_median":%.1f,"lost":%s,"expected":%s,"errors":%s,"rounds":%d,"duration_s":%d,"bytes":%d,"workers":%d,"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
				"$s" "$name" "$rate" "$rmin" "$rmax" "$pubs" "$p50" "$p99" "$p999" "$cpu" "$srvpct" "$gen" "$genus" "$foreign" \
				"$lost" "$owed" "$errs" "$ROUNDS" "$DURATION_S" "$BYTES" "$(workers_of "$name")" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
		done
		read -r a_rate _ _ < <(col_stats "$s" "$A_NAME" 4)
		read -r a_p99 _ _ < <(col_stats "$s" "$A_NAME" 6)
		read -r a_cpu _ _ < <(col_stats "$s" "$A_NAME" 8)
		for b in "${B_NAMES[@]}"; do
			read -r b_rate _ _ < <(col_stats "$s" "$b" 4)
			read -r b_p99 _ _ < <(col_stats "$s" "$b" 6)
			read -r b_cpu _ _ < <(col_stats "$s" "$b" 8)
			r_rate=$(ratio "$a_rate" "$b_rate")
			r_p99=$(ratio "$a_p99" "$b_p99")
			r_cpu=$(ratio "$a_cpu" "$b_cpu")
			read -r q_rate q_rmin q_rmax < <(pair_stats "$s" "$A_NAME" "$b" 4)
			read -r q_cpu q_cmin q_cmax < <(pair_stats "$s" "$A_NAME" "$b" 8)
			# rooms publish at a fixed rate: both servers deliver the same, so only fanout's
			# deliveries/s is a throughput target.
			[[ $s == rooms-* ]] || awk -v r="$r_rate" 'BEGIN { exit !(r >= 1.0) }' || FAIL=1
			printf '| %s | **%s/%s** | **%s** (by round: %s, %s-%s) | | | **%s** | | **%s** (by round: %s, %s-%s) | | | | |\n' \
				"$s" "$A_NAME" "$b" "$r_rate" "$q_rate" "$q_rmin" "$q_rmax" "$r_p99" "$r_cpu" "$q_cpu" "$q_cmin" "$q_cmax"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","ratio":"%s/%s","deliveries_per_s":%s,"p99":%s,"cpu_us_per_delivery":%s,"deliveries_per_s_by_round":[%s,%s,%s],"cpu_us_per_delivery_by_round":[%s,%s,%s],"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
				"$s" "$A_NAME" "$b" "$r_rate" "$r_p99" "$r_cpu" "$q_rate" "$q_rmin" "$q_rmax" "$q_cpu" "$q_cmin" "$q_cmax" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
		done
	done
	if ((HAVE_CONNECT)); then
		echo
		echo "| scenario | server | connections/s opened and subscribed, median (min-max) | connections/s opened | KiB of server RSS per idle subscribed connection, median (min-max) | unconfirmed | errors | other load % |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	fi
	for s in "${RUN_SCEN[@]}"; do
		is_connect "$s" || continue
		for name in "${SERVERS[@]}"; do
			read -r rate rmin rmax < <(col_stats "$s" "$name" 4)
			read -r orate _ _ < <(col_stats "$s" "$name" 14)
			read -r kib kmin kmax < <(col_stats "$s" "$name" 16)
			read -r foreign _ _ < <(col_stats "$s" "$name" 10)
			unready=$(sum_col "$s" "$name" 13)
			errs=$(sum_col "$s" "$name" 11)
			((unready == 0)) || FAIL=1
			printf '| %s | %s | %.0f (%.0f-%.0f) | %.0f | %.2f (%.2f-%.2f) | %s | %s | %.1f |\n' "$s" "$name" \
				"$rate" "$rmin" "$rmax" "$orate" "$kib" "$kmin" "$kmax" "$unready" "$errs" "$foreign"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","server":"%s","conns_per_s_median":%.1f,"conns_per_s_min":%.1f,"conns_per_s_max":%.1f,"conns_open_per_s_median":%.1f,"kib_per_conn_median":%.3f,"kib_per_conn_min":%.3f,"kib_per_conn_max":%.3f,"unready":%s,"errors":%s,"other_cpu_pct_median":%.1f,"conns":%d,"rounds":%d,"workers":%d,"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
				"$s" "$name" "$rate" "$rmin" "$rmax" "$orate" "$kib" "$kmin" "$kmax" "$unready" "$errs" "$foreign" \
				"$CONNECT_CONNS" "$ROUNDS" "$(workers_of "$name")" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
		done
		read -r a_rate _ _ < <(col_stats "$s" "$A_NAME" 4)
		read -r a_kib _ _ < <(col_stats "$s" "$A_NAME" 16)
		for b in "${B_NAMES[@]}"; do
			read -r b_rate _ _ < <(col_stats "$s" "$b" 4)
			read -r b_kib _ _ < <(col_stats "$s" "$b" 16)
			printf '| %s | **%s/%s** | **%s** | | **%s** | | | |\n' "$s" "$A_NAME" "$b" \
				"$(ratio "$a_rate" "$b_rate")" "$(ratio "$a_kib" "$b_kib")"
			JSON_LINES+=("$(printf 'JSON {"bench":"ws-pubsub","scenario":"%s","ratio":"%s/%s","conns_per_s":%s,"kib_per_conn":%s,"pin":%d,"sched":"%s","peer_sched":"%s","rev":"%s"}' \
				"$s" "$A_NAME" "$b" "$(ratio "$a_rate" "$b_rate")" "$(ratio "$a_kib" "$b_kib")" "$PIN" "$SCHED" "$PEER_SCHED" "$GIT_REV")")
		done
	done
	echo
	for s in "${RUN_SCEN[@]}"; do echo "- $(scen_desc "$s")"; done
	echo
	echo "Servers: $(for n in "${SERVERS[@]}"; do printf '%s (%s); ' "$n" "$(workers_desc "$n")"; done)"
	echo
	echo "Ratio rows: deliveries/s and connections/s (higher is better; in rooms the rate is fixed, so" \
		"it only shows whether both kept up), p99, CPU us/delivery and KiB per connection (lower is" \
		"better): the ratio of the medians first, then \"by round\": the median, min and max of the" \
		"ratios of the two runs of each round, which $( ((SIDE)) && echo "ran at the same time" ||
			echo "are minutes apart and so see the same machine")." \
		"Herald answers every publication with an ack and wraps each delivery in its JSON" \
		"envelope; the Bun and Node peers do neither, NATS wraps each in a MSG line, nchan sends the" \
		"payload bare and also back to its publisher (nchan_pubsub). KiB per connection is the growth" \
		"of the server's user-space RSS (VmRSS, summed over its processes) divided by the connections;" \
		"kernel socket buffers are not in it. wsload (-t $THREADS) shares the $(nproc) CPUs with the" \
		"server: near 100% of a core per thread it, not the server, may be the limit."
	((${#B_NAMES[@]} > 0)) || echo "No peer was available: Herald alone, no ratios."
	((SIDE)) || noisy_note 10 "deliveries/s, connections/s and latency" "CPU us/delivery"
	echo
	printf '%s\n' "${JSON_LINES[@]}"
} >"$SUMMARY"
cat "$SUMMARY"

save_results pubsub "$SUMMARY" "$TMP"/runs/*.txt "$TMP/runs.jsonl"
if [[ -n $SAVED_DIR && $CHARTS == 1 ]]; then
	if command -v gnuplot >/dev/null 2>&1; then
		"$REPO/bench/charts.sh" "$SAVED_DIR" >&2 || warn "charts failed (bench/charts.sh $SAVED_DIR)"
	else
		warn "gnuplot not found (scripts/install-deps installs gnuplot-nox): no charts"
	fi
fi

if ((FAIL)) && [[ $STRICT == 1 ]]; then
	echo "pubsub.sh: target missed or deliveries lost (STRICT=1)" >&2
	exit 1
fi
