-- twenty_mirror_instant_slow (0006) catches bad date-times in an EXCEPTION block, which opens a
-- subtransaction, and nothing in parallel mode may open one, not even the leader: marked PARALLEL
-- SAFE, a parallel plan over a large object (a count, a filter on a date-time) failed with "cannot
-- start subtransactions during a parallel operation" as soon as one value took the slow path.
-- PostgreSQL's rule for such a function is PARALLEL UNSAFE; twenty_mirror_instant calls it (and is
-- inlined into the queries), so it follows. Those queries then run without parallel workers; the
-- indexes of 0006 are what serves them.
ALTER FUNCTION twenty_mirror_instant_slow(text) PARALLEL UNSAFE;
ALTER FUNCTION twenty_mirror_instant(text) PARALLEL UNSAFE;
