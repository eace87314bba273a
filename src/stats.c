/* stats.c - the per-thread pointer to a worker's counters (see stats.h). */
#include "stats.h"

__thread struct worker_stats *stats_local;
