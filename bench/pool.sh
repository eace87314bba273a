#!/usr/bin/env bash
# Pools the rounds of several bench/pubsub.sh runs. One run's medians rest on three rounds, and on
# this kind of machine a round can land well away from the others (a hypervisor's timing, which
# CPU the load generator's threads settle on); the rounds of several runs of the same build give
# sturdier figures and show how often a target is missed.
#
#   bench/pool.sh bench/results/pubsub-A bench/results/pubsub-B ...
#
# For each scenario and server: the rounds pooled and the median, quartiles and range of
# deliveries/s (connect: connections/s), p99 and server CPU per delivery (connect: KiB per idle
# connection). Then Herald against each peer, round by round: only two runs of the same round of
# the same directory are paired, as they ran minutes apart on the same machine. CPU_LIMIT (0.35
# us per delivery, fan-out scenarios) and KIB_LIMIT (0.5 KiB per idle connection, all on one
# topic: connect-one), Herald's targets, count its rounds above them. In rooms the rate is fixed,
# so its deliveries/s ratio only shows that both kept up: p99 is what compares there.
#
# Reads each directory's runs.tsv (columns in bench/pubsub.sh's record_load) and the revisions
# from runs.jsonl; directories of different Herald revisions, or whose wsload ran with different
# --spin-us (runs before it have none: 0), are pooled only with MIXED=1.
set -euo pipefail

CPU_LIMIT=${CPU_LIMIT:-0.35}
KIB_LIMIT=${KIB_LIMIT:-0.5}
die() { echo "pool.sh: $*" >&2; exit 1; }
(($# > 0)) || die "usage: bench/pool.sh RESULT_DIR... (directories of bench/pubsub.sh runs)"

revs=() spins=()
for d in "$@"; do
	[[ -r $d/runs.tsv && -r $d/runs.jsonl ]] || die "$d: no runs.tsv and runs.jsonl (not a bench/pubsub.sh result directory)"
	r=$({ grep -o '"server":"herald","round":[0-9]*,"workers":[0-9]*,"rev":"[^"]*"' "$d/runs.jsonl" || true; } |
		sed 's/.*"rev":"//; s/"$//' | sort -u | tr '\n' ' ')
	revs+=("${r% }")
	s=$({ grep -o '"spin_us":[0-9]*' "$d/runs.jsonl" || true; } | sed 's/.*://' | sort -u | tr '\n' ' ')
	spins+=("${s:-0}")
done
uniq_revs=$(printf '%s\n' "${revs[@]}" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ')
[[ $(wc -w <<<"$uniq_revs") -le 1 || ${MIXED:-0} == 1 ]] ||
	die "the directories hold different Herald revisions ($uniq_revs); MIXED=1 pools them anyway"

uniq_spins=$(printf '%s\n' "${spins[@]}" | tr ' ' '\n' | grep -v '^$' | sort -nu | tr '\n' ' ')
[[ $(wc -w <<<"$uniq_spins") -le 1 || ${MIXED:-0} == 1 ]] ||
	die "the directories' wsload ran with different --spin-us (${uniq_spins% }); MIXED=1 pools them anyway"

echo "## Pooled rounds: $# run(s), Herald ${uniq_revs% }, wsload --spin-us ${uniq_spins% }"
echo
for d in "$@"; do awk -v d="$d" 'BEGIN { OFS = "\t" } { print d, $0 }' "$d/runs.tsv"; done |
	awk -F'\t' -v cpu_limit="$CPU_LIMIT" -v kib_limit="$KIB_LIMIT" '
	# Values of a key are kept as a space-separated list, sorted when summarised.
	function add(k, v) { val[k] = (k in val) ? val[k] " " v : v }
	function sorted(list, a,    n, i, j, t) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) {
			t = a[i] + 0
			for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		return n
	}
	# Linear interpolation between order statistics (quantile type 7).
	function q(a, n, p,    h, lo) {
		h = (n - 1) * p + 1; lo = int(h)
		return lo >= n ? a[n] + 0 : a[lo] + (h - lo) * (a[lo + 1] - a[lo])
	}
	function fmt(v) { return v >= 1000 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : sprintf("%.3f", v) }
	function summary(k,    a, n) {
		if (!(k in val)) return "-"
		n = sorted(val[k], a)
		return fmt(q(a, n, 0.5)) " (" fmt(q(a, n, 0.25)) "-" fmt(q(a, n, 0.75)) ", " fmt(a[1]) "-" fmt(a[n]) ")"
	}
	# Values of a space-separated list above (dir 1) or below (dir -1) the limit.
	function beyond(list, limit, dir,    a, n, i, c) {
		n = split(list, a, " "); c = 0
		for (i = 1; i <= n; i++) c += dir < 0 ? a[i] + 0 < limit : a[i] + 0 > limit
		return c
	}
	function over(k, limit,    a) { return beyond(val[k], limit, 1) " of " split(val[k], a, " ") }
	{
		dir = $1; s = $2; srv = $3; round = $4
		if (!(s in seen_s)) { seen_s[s] = 1; order[++ns] = s }
		if (!((s, srv) in seen)) { seen[s, srv] = 1; servers[s] = servers[s] " " srv }
		connect = s ~ /^connect/
		rate[dir, round, s, srv] = $5
		add(s SUBSEP srv SUBSEP "rate", $5)
		if (connect) {
			add(s SUBSEP srv SUBSEP "kib", $17)
			cost[dir, round, s, srv] = $17
		} else {
			add(s SUBSEP srv SUBSEP "p99", $7)
			p99[dir, round, s, srv] = $7
			add(s SUBSEP srv SUBSEP "cpu", $9)
			cost[dir, round, s, srv] = $9
		}
		key[dir, round, s] = 1
	}
	END {
		print "| scenario | server | rounds | deliveries/s or connections/s: median (quartiles, range) | p99 us | server CPU us/delivery or KiB per connection | Herald above the limit |"
		print "| --- | --- | --- | --- | --- | --- | --- |"
		for (i = 1; i <= ns; i++) {
			s = order[i]; m = split(substr(servers[s], 2), sv, " ")
			connect = s ~ /^connect/
			for (j = 1; j <= m; j++) {
				k = s SUBSEP sv[j]
				n = split(val[k SUBSEP "rate"], tmp, " ")
				c = connect ? summary(k SUBSEP "kib") : summary(k SUBSEP "cpu")
				# The CPU target is for fan-out; rooms at a fixed rate spend their CPU on timers and
				# small sends, not on deliveries.
				lim = sv[j] != "herald" ? "" : s == "connect-one" ? over(k SUBSEP "kib", kib_limit) " over " kib_limit " KiB" \
				    : s ~ /^fanout/ ? over(k SUBSEP "cpu", cpu_limit) " over " cpu_limit " us" : ""
				printf "| %s | %s | %d | %s | %s | %s | %s |\n", s, sv[j], n, summary(k SUBSEP "rate"),
					connect ? "-" : summary(k SUBSEP "p99"), c, lim
			}
		}
		print ""
		print "| scenario | Herald/peer | rounds paired | deliveries/s or connections/s ratio: median (range) | rounds below 1 | p99 ratio: median (range) | rounds above 1 | CPU or KiB ratio: median (range) |"
		print "| --- | --- | --- | --- | --- | --- | --- | --- |"
		for (i = 1; i <= ns; i++) {
			s = order[i]; m = split(substr(servers[s], 2), sv, " ")
			for (j = 1; j <= m; j++) {
				p = sv[j]
				if (p == "herald") continue
				delete lists; npair = 0
				for (kk in key) {
					split(kk, part, SUBSEP)
					d = part[1]; rd = part[2]
					if (part[3] != s || !((d, rd, s, "herald") in rate) || !((d, rd, s, p) in rate)) continue
					npair++
					ratio_add("rate", rate[d, rd, s, "herald"], rate[d, rd, s, p])
					ratio_add("p99", p99[d, rd, s, "herald"], p99[d, rd, s, p])
					ratio_add("cost", cost[d, rd, s, "herald"], cost[d, rd, s, p])
				}
				if (!npair) continue
				printf "| %s | herald/%s | %d | %s | %s | %s | %s | %s |\n", s, p, npair, ratio_summary("rate"),
					s ~ /^rooms/ ? "-" : count_past("rate", 1, -1), ratio_summary("p99"), count_past("p99", 1, 1), ratio_summary("cost")
			}
		}
	}
	# Ratios of one pairing, kept in lists[name] (pairs whose peer figure is 0 have none).
	function ratio_add(name, h, peer) {
		if (peer > 0) lists[name] = (name in lists) ? lists[name] " " h / peer : h / peer
	}
	function ratio_summary(name,    a, n) {
		if (!(name in lists)) return "-"
		n = sorted(lists[name], a)
		return sprintf("%.2f (%.2f-%.2f)", q(a, n, 0.5), a[1], a[n])
	}
	# Ratios of a pairing beyond the limit ("-" when it has none).
	function count_past(name, limit, dir) { return (name in lists) ? beyond(lists[name], limit, dir) : "-" }'
