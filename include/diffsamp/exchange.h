/* exchange: which local-search samples a rank sends to the others when the
 * replay shards are exchanged (replay.exchange in the config, the mode of
 * ds_dist_exchange). One definition, shared by config and dist. */
#ifndef DS_EXCHANGE_H
#define DS_EXCHANGE_H

/* The order matches the allowed strings of replay.exchange ("best", "random"). */
typedef enum ds_exchange {
    DS_EXCH_BEST = 0,  /* the highest log R first */
    DS_EXCH_RANDOM     /* uniform draws (with replacement) from the LS buffer */
} ds_exchange;

#endif
