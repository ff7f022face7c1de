-- The recent history of every node's figures, for the instance metrics method
-- (`GET …/instances/{instance}/metrics`) and the console's charts: one row per node and
-- 10-second bucket, copied from `node.observed` by each API replica's sampler (the
-- primary key keeps one per bucket however many replicas sample) and removed after two
-- hours. Nothing on the heartbeat path writes here.
create table node_sample (
    instance_id uuid not null references instance (id) on delete cascade,
    node_id uuid not null,
    -- The start of the 10-second bucket.
    at timestamptz not null,
    zone_id text not null,
    role text not null check (role in ('PRIMARY', 'REPLICA')),
    -- The engine ran and answered its agent at its last report.
    up boolean not null,
    used_memory_bytes bigint,
    maxmemory_bytes bigint,
    connected_clients bigint,
    commands_processed bigint,
    keyspace_hits bigint,
    keyspace_misses bigint,
    lag_bytes bigint,
    primary key (instance_id, at, node_id)
);
create index node_sample_at_idx on node_sample (at);

-- The failover markers of an instance's charts: its operations by time (finished ones
-- included, which the partial operation_one_active_idx leaves out).
create index operation_instance_time_idx on operation (instance_id, created_at)
    where instance_id is not null;
