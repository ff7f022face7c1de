-- Whether a STANDARD_HA primary's write fence (min-replicas-to-write) is on. The health
-- monitor lifts it while the primary has no replica that could acknowledge (none on a
-- heartbeating host with its engine up), so that primary keeps taking writes, and puts it
-- back once one is. Meaningless on replicas and on BASIC nodes.
alter table node add column write_fence boolean not null default true;

-- A /28 (or larger) range that lost a node while the node's host was silent: its engine
-- may still hold the address. The range is not returned to the free pool, after its
-- instance lets it go, until every host listed here applies a config at least
-- `generation` (one without the node: its agent stopped the engine), or an operator
-- releases the host's holds. Free blocks plus allocated plus quarantined ranges cover
-- each pool.
create table range_quarantine (
    network_id uuid not null references network (id) on delete cascade,
    range cidr not null,
    host_id text not null references host (id) on delete cascade,
    generation bigint not null,
    created_at timestamptz not null default now(),
    primary key (network_id, range, host_id)
);
create index range_quarantine_host_idx on range_quarantine (host_id);
