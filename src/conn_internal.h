/*
 * conn_internal.h - what conn_batch.c needs of a connection's turn (conn.c). Not for other modules:
 * both functions are for the thread that runs `c`, whose turn ended in conn_batch_defer.
 */
#ifndef HERALD_CONN_INTERNAL_H
#define HERALD_CONN_INTERNAL_H

#include <stdbool.h>

#include "conn.h"

/* conn_turn_resume - the batched send is accounted for: finishes the turn (another turn first if
 * `again`), re-arms and lets go of c, or closes it. */
void conn_turn_resume(struct conn *c, int worker, bool again);

/* conn_turn_close - closes c (its socket failed). */
void conn_turn_close(struct conn *c, int worker);

#endif
