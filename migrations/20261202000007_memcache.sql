-- Memcached instances (docs/memcached.md): a pool of independent memcached nodes that
-- clients find through a discovery endpoint. They have tables of their own rather than
-- sharing `instance` and `node`: no tier, role, replication, AUTH or TLS columns apply,
-- and every Redis rule (one primary per instance, write fences, failover) would need an
-- exception. What they share with Redis instances is the network's allocator (their
-- /28 is an `address_range` row under the same exclusion constraint), the operations
-- table, the hosts' generations and the hosts' memory (host_allocated_bytes).
create table memcache_instance (
    id uuid primary key,
    project_id text not null references project (id),
    -- Byte order ("C") so that list pages come in the same order on every cluster.
    region_id text collate "C" not null references region (id),
    name text collate "C" not null check (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    display_name text not null default '' check (length(display_name) <= 80),
    labels jsonb not null default '{}',
    network_id uuid not null references network (id),
    zones text[] not null check (cardinality(zones) >= 1),
    -- One /28: offset 1 is the discovery endpoint, 2..14 the nodes.
    node_count integer not null check (node_count between 1 and 13),
    cpu_count integer not null check (cpu_count between 1 and 32),
    memory_size_mb integer not null check (memory_size_mb between 1024 and 65536),
    memcache_version text not null,
    -- Staged by updateParameters; nodes take them on applyParameters.
    parameters jsonb not null default '{}',
    parameters_id text not null default '',
    -- The host whose agent serves the discovery endpoint (the host of one of the nodes),
    -- and the host generation that carries its current node list.
    discovery_host_id text references host (id),
    discovery_generation bigint,
    -- The `config get cluster` version: raised on every change of the node list.
    config_version bigint not null default 1,
    state text not null check (state in ('CREATING', 'READY', 'UPDATING', 'DELETING', 'FAILED')),
    status_message text not null default '',
    -- Bumped on every change; the etag is derived from it.
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memcache_instance_name_key unique (project_id, region_id, name)
);
create index memcache_instance_list_idx on memcache_instance (project_id, region_id, name);
create index memcache_instance_discovery_idx on memcache_instance (discovery_host_id);

create table memcache_node (
    id uuid primary key,
    instance_id uuid not null references memcache_instance (id) on delete cascade,
    -- `node-{ordinal}`; new nodes take the next ordinal, scale-down removes the newest.
    ordinal integer not null check (ordinal >= 1),
    host_id text not null references host (id),
    zone_id text not null references zone (id),
    address inet not null,
    memory_bytes bigint not null check (memory_bytes > 0),
    -- The parameters this node runs with (applyParameters changes them).
    parameters jsonb not null default '{}',
    parameters_id text not null default '',
    -- The host generation at which its desired state last changed.
    desired_generation bigint not null,
    -- Being stopped: no longer in its host's config, still holding its address.
    removing boolean not null default false,
    -- The last report of its agent (MemcacheNodeReport JSON).
    observed jsonb,
    observed_generation bigint,
    observed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (instance_id, ordinal),
    unique (instance_id, address)
);
create index memcache_node_host_idx on memcache_node (host_id);

-- Memory placed on a host: Redis nodes and memcached nodes alike.
create function host_allocated_bytes(host text) returns bigint
language sql stable as $$
    select coalesce((select sum(memory_bytes) from node where host_id = host), 0)::bigint
         + coalesce((select sum(memory_bytes) from memcache_node where host_id = host), 0)::bigint
$$;

-- A Memcached instance's /28 comes from the same allocator and constraint.
alter table address_range add column memcache_instance_id uuid references memcache_instance (id) on delete cascade;
alter table address_range drop constraint address_range_purpose_check;
alter table address_range add constraint address_range_purpose_check
    check (purpose in ('PRIMARY', 'SECONDARY', 'CONNECTOR', 'MEMCACHE'));
alter table address_range drop constraint address_range_owner_check;
alter table address_range add constraint address_range_owner_check
    check (num_nonnulls(instance_id, connector_id, memcache_instance_id) = 1
           and (connector_id is null) = (purpose <> 'CONNECTOR')
           and (memcache_instance_id is null) = (purpose <> 'MEMCACHE'));
create unique index address_range_memcache_key on address_range (memcache_instance_id) where memcache_instance_id is not null;

-- Operations on Memcached instances: one running at a time per instance.
alter table operation add column memcache_instance_id uuid references memcache_instance (id) on delete set null;
create unique index operation_one_active_memcache_idx on operation (memcache_instance_id) where not done;
