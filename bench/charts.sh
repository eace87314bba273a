#!/usr/bin/env bash
# Draws PNG charts with gnuplot from a bench/pubsub.sh results directory (runs.tsv, runs.jsonl):
#
#   bench/charts.sh bench/results/pubsub-<time>      (pubsub.sh calls it when gnuplot is there)
#
# Writes into that directory:
#   throughput-vs-subscribers.png  fanout deliveries/s (median over rounds) against the number of
#                                  subscribers, one line per server (fanout, fanout-big, fanout-s<N>)
#   cpu-vs-subscribers.png         server CPU us per delivery against the same
#   latency-<scenario>.png         p50, p99 and p99.9 latency (medians) per server, one chart per
#                                  load scenario
#   connect-kib.png                server RSS KiB per idle subscribed connection per server (when
#                                  the run had a connect scenario)
# and the data files gnuplot read (*.dat). Nothing is drawn for what the run did not measure.
set -euo pipefail

BENCH_NAME=charts.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || { usage >&2; exit 2; }
DIR=$1
RES="$DIR/runs.tsv"
[[ -r $RES && -r $DIR/runs.jsonl ]] || die "$DIR has no runs.tsv and runs.jsonl (a bench/pubsub.sh results directory)"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (scripts/install-deps installs gnuplot-nox)"

# Servers in the order they first appear; scenarios likewise.
mapfile -t SERVERS < <(awk -F'\t' '!seen[$2]++ { print $2 }' "$RES")
mapfile -t SCENS < <(awk -F'\t' '!seen[$1]++ { print $1 }' "$RES")
TITLE_SUFFIX=$(sed -n '4p' "$DIR/summary.md" | awk -F' · ' '{ print $1 " · " $2 }')
NOISY=
grep -q '^\*\*Noisy' "$DIR/summary.md" && NOISY=" (noisy run: other load above the warning limit)"

# Subscriber count of a fanout scenario, from wsload's JSON.
subs_of() { sed -n "s/.*\"scenario\":\"$1\".*\"subscribers\":\([0-9]*\).*/\1/p" "$DIR/runs.jsonl" | head -n1; }

PLOT_HEAD="set terminal pngcairo size 960,600 enhanced font 'DejaVu Sans,11'
set grid ytics lc rgb '#dddddd'
set key outside right top
set border 3
set tics nomirror"

# ---- throughput and CPU against subscriber count ----------------------------------------------
fan=()
for s in "${SCENS[@]}"; do [[ $s == fanout || $s == fanout-big || $s == fanout-s* ]] && fan+=("$s"); done
if ((${#fan[@]} > 0)); then
	for name in "${SERVERS[@]}"; do
		for s in "${fan[@]}"; do
			n=$(subs_of "$s")
			[[ -n $n ]] || continue
			read -r rate _ _ < <(col_stats "$s" "$name" 4)
			read -r cpu _ _ < <(col_stats "$s" "$name" 8)
			printf '%s %s %s\n' "$n" "$rate" "$cpu"
		done | sort -n -u -k1,1 >"$DIR/fanout-$name.dat"
	done
	plots=() cplots=()
	for name in "${SERVERS[@]}"; do
		plots+=("'$DIR/fanout-$name.dat' using 1:(\$2/1e6) with linespoints lw 2 pt 7 title '$name'")
		cplots+=("'$DIR/fanout-$name.dat' using 1:3 with linespoints lw 2 pt 7 title '$name'")
	done
	gnuplot <<-EOF
		$PLOT_HEAD
		set output '$DIR/throughput-vs-subscribers.png'
		set title "Fan-out: deliveries/s against subscribers (64 B, 16 in flight, median of rounds)\n{/*0.8 $TITLE_SUFFIX$NOISY}"
		set logscale x
		set xlabel 'subscribers of the topic'
		set ylabel 'million deliveries/s'
		set yrange [0:*]
		plot $(IFS=,; echo "${plots[*]}")
	EOF
	gnuplot <<-EOF
		$PLOT_HEAD
		set output '$DIR/cpu-vs-subscribers.png'
		set title "Fan-out: server CPU time per delivery (lower is better)\n{/*0.8 $TITLE_SUFFIX$NOISY}"
		set logscale x
		set logscale y
		set xlabel 'subscribers of the topic'
		set ylabel 'server CPU us per delivery'
		plot $(IFS=,; echo "${cplots[*]}")
	EOF
	log "charts: $DIR/throughput-vs-subscribers.png, $DIR/cpu-vs-subscribers.png"
fi

# ---- latency percentiles per scenario ---------------------------------------------------------
for s in "${SCENS[@]}"; do
	[[ $s == connect-* ]] && continue
	for name in "${SERVERS[@]}"; do
		read -r p50 _ _ < <(col_stats "$s" "$name" 5)
		read -r p99 _ _ < <(col_stats "$s" "$name" 6)
		read -r p999 _ _ < <(col_stats "$s" "$name" 7)
		printf '%s %.0f %.0f %.0f\n' "$name" "$p50" "$p99" "$p999"
	done >"$DIR/latency-$s.dat"
	gnuplot <<-EOF
		$PLOT_HEAD
		set output '$DIR/latency-$s.png'
		set title "Latency, publish to delivery: $s (median of rounds; lower is better)\n{/*0.8 $TITLE_SUFFIX$NOISY}"
		set style data histograms
		set style histogram clustered gap 1
		set style fill solid 0.85 border -1
		set boxwidth 0.9
		set logscale y
		set yrange [10:*]
		set ylabel 'latency, us (log scale)'
		plot '$DIR/latency-$s.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99', '' using 4 title 'p99.9'
	EOF
	log "chart: $DIR/latency-$s.png"
done

# ---- memory per idle connection ---------------------------------------------------------------
con=()
for s in "${SCENS[@]}"; do [[ $s == connect-* ]] && con+=("$s"); done
if ((${#con[@]} > 0)); then
	{
		printf 'server'
		printf ' %s' "${con[@]}"
		echo
		for name in "${SERVERS[@]}"; do
			printf '%s' "$name"
			for s in "${con[@]}"; do
				read -r kib _ _ < <(col_stats "$s" "$name" 16)
				printf ' %.2f' "$kib"
			done
			echo
		done
	} >"$DIR/connect-kib.dat"
	cols=()
	for ((i = 0; i < ${#con[@]}; i++)); do cols+=("'' using $((i + 2)):xtic(1) title columnheader($((i + 2)))"); done
	cols[0]="'$DIR/connect-kib.dat' using 2:xtic(1) title columnheader(2)"
	gnuplot <<-EOF
		$PLOT_HEAD
		set output '$DIR/connect-kib.png'
		set title "Server RSS per idle subscribed connection (KiB; lower is better)\n{/*0.8 $TITLE_SUFFIX$NOISY}"
		set style data histograms
		set style histogram clustered gap 1
		set style fill solid 0.85 border -1
		set boxwidth 0.9
		set ylabel 'KiB per connection'
		plot $(IFS=,; echo "${cols[*]}")
	EOF
	log "chart: $DIR/connect-kib.png"
fi
