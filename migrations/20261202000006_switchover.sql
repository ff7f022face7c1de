-- A coordinated switchover (manual LIMITED_DATA_LOSS failover) under way: the id of its
-- failover operation, on the replica taking over (set first) and then on the primary
-- handing over to it. The agents see it as `switchover` in those nodes' specs. Cleared
-- once the new roles are recorded or the switchover is abandoned.
alter table node add column switchover_id uuid;
