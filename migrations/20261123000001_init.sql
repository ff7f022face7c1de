-- Cacheplane schema. Postgres is the only source of truth: every invariant the database
-- can hold, it holds, so that several API replicas can run against it safely.

create extension if not exists btree_gist;

create table region (
    id text primary key check (id ~ '^[a-z][a-z0-9-]{0,39}$'),
    created_at timestamptz not null default now()
);

create table zone (
    id text primary key check (id ~ '^[a-z][a-z0-9-]{0,39}$'),
    region_id text not null references region (id),
    created_at timestamptz not null default now()
);
create index zone_region_idx on zone (region_id);

-- The local stack's region; admins add more.
insert into region (id) values ('local');
insert into zone (id, region_id) values ('local-a', 'local'), ('local-b', 'local'), ('local-c', 'local');

create table tier (
    id text primary key check (id in ('BASIC', 'STANDARD_HA')),
    description text not null,
    min_memory_size_gb integer not null check (min_memory_size_gb >= 1),
    max_memory_size_gb integer not null,
    min_replica_count integer not null check (min_replica_count >= 0),
    max_replica_count integer not null,
    automatic_failover boolean not null,
    check (min_memory_size_gb <= max_memory_size_gb),
    check (min_replica_count <= max_replica_count)
);
insert into tier values
    ('BASIC', 'One node, no replicas, no failover.', 1, 300, 0, 0, false),
    ('STANDARD_HA', 'A primary and 1-5 replicas across zones, automatic failover, optional read endpoint.', 1, 300, 1, 5, true);

create table project (
    id text primary key check (id ~ '^[a-z][a-z0-9-]{0,61}[a-z0-9]$'),
    created_at timestamptz not null default now()
);

create table network (
    id uuid primary key,
    project_id text not null references project (id) on delete cascade,
    name text not null check (name ~ '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    ip_range cidr not null check (family(ip_range) = 4 and masklen(ip_range) between 8 and 28),
    description text not null default '',
    created_at timestamptz not null default now(),
    unique (project_id, name),
    -- In loopback and host modes all networks share one address space, so pools never
    -- overlap; an instance's address is then unique on every host.
    constraint network_ip_range_excl exclude using gist (ip_range inet_ops with &&)
);

-- The free space of each network's pool as aligned power-of-two blocks (a buddy
-- allocator): allocating or freeing a range costs the same at the 4 096th /28 as at the
-- first. The union of free blocks and address_range rows is always the whole pool.
create table network_free_block (
    network_id uuid not null references network (id) on delete cascade,
    block cidr not null,
    primary key (network_id, block)
);
create index network_free_block_size_idx on network_free_block (network_id, masklen(block) desc, block);

create table host (
    id text primary key check (id ~ '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$'),
    zone_id text not null references zone (id),
    address inet not null,
    memory_bytes bigint not null check (memory_bytes > 0),
    engines text[] not null default '{}',
    -- Desired config generation: bumped whenever a node of this host changes.
    generation bigint not null default 1,
    -- The generation the agent last reported applying.
    applied_generation bigint not null default 0,
    free_memory_bytes bigint,
    last_heartbeat_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index host_zone_idx on host (zone_id);

create table instance (
    id uuid primary key,
    project_id text not null references project (id),
    -- Byte order ("C") so that list pages come in the same order on every cluster.
    region_id text collate "C" not null references region (id),
    name text collate "C" not null check (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    display_name text not null default '' check (length(display_name) <= 80),
    tier_id text not null references tier (id),
    memory_size_gb integer not null check (memory_size_gb >= 1),
    replica_count integer not null check (replica_count between 0 and 5),
    read_replicas_enabled boolean not null default false,
    location_id text not null references zone (id),
    alternative_location_id text references zone (id),
    redis_version text not null,
    redis_configs jsonb not null default '{}',
    network_id uuid not null references network (id),
    port integer not null default 6379 check (port between 1 and 65535),
    auth_enabled boolean not null default true,
    -- Kept in clear: agents need it for requirepass/masterauth. Only the get-auth-string
    -- method and the host config carry it; it is never logged.
    auth_string text not null,
    state text not null check (state in ('CREATING', 'READY', 'UPDATING', 'DELETING', 'REPAIRING', 'FAILING_OVER', 'FAILED')),
    status_message text not null default '',
    labels jsonb not null default '{}',
    -- Bumped on every change; the etag is derived from it.
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint instance_name_key unique (project_id, region_id, name),
    check (alternative_location_id is distinct from location_id),
    check (tier_id <> 'BASIC' or (replica_count = 0 and not read_replicas_enabled))
);
-- Keyset pagination of a project's instances by name.
create index instance_list_idx on instance (project_id, region_id, name);

create table address_range (
    instance_id uuid not null references instance (id) on delete cascade,
    network_id uuid not null references network (id),
    -- PRIMARY holds the endpoints and the nodes; SECONDARY is added when read replicas
    -- are enabled on a running instance.
    purpose text not null check (purpose in ('PRIMARY', 'SECONDARY')),
    range cidr not null check (family(range) = 4 and masklen(range) <= 28),
    primary key (instance_id, purpose),
    -- Overlap is impossible by construction, even under concurrent creates.
    constraint address_range_excl exclude using gist (network_id with =, range inet_ops with &&)
);

create table node (
    id uuid primary key,
    instance_id uuid not null references instance (id) on delete cascade,
    -- Placement order: 0 is the first primary; replicas are removed newest (highest) first.
    ordinal integer not null check (ordinal >= 0),
    host_id text not null references host (id),
    zone_id text not null references zone (id),
    role text not null check (role in ('PRIMARY', 'REPLICA')),
    address inet not null,
    memory_bytes bigint not null check (memory_bytes > 0),
    -- The host generation at which this node's desired state last changed: the node is
    -- converged once its host reports applying that generation or a later one.
    desired_generation bigint not null,
    -- Being stopped: no longer in its host's config.
    removing boolean not null default false,
    -- The last report of its agent (NodeReport JSON); null while unknown.
    observed jsonb,
    observed_generation bigint,
    observed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (instance_id, ordinal)
);
create index node_host_idx on node (host_id);
create index node_instance_idx on node (instance_id);
create unique index node_one_primary_idx on node (instance_id) where role = 'PRIMARY' and not removing;

create table operation (
    id uuid primary key,
    project_id text not null references project (id),
    region_id text not null references region (id),
    verb text not null check (verb in ('create', 'update', 'delete', 'failover')),
    target text not null,
    instance_id uuid references instance (id) on delete set null,
    done boolean not null default false,
    -- Status JSON of a failed operation.
    error jsonb,
    -- Instance JSON of a successful one (absent for delete).
    response jsonb,
    progress integer not null default 0 check (progress between 0 and 100),
    status_detail text not null default '',
    -- What the operation does, for the worker that resumes it (e.g. the failover target).
    params jsonb not null default '{}',
    created_at timestamptz not null default now(),
    ended_at timestamptz,
    check (done = (ended_at is not null)),
    check (error is null or response is null)
);
create index operation_list_idx on operation (project_id, region_id, created_at desc, id desc);
-- An instance runs one operation at a time.
create unique index operation_one_active_idx on operation (instance_id) where not done;

-- requestId idempotency: the same request twice, even concurrently, yields one operation.
create table request (
    project_id text not null references project (id) on delete cascade,
    request_id uuid not null,
    -- What the request asked for; the same requestId with another request is refused.
    fingerprint text not null,
    operation_id uuid not null references operation (id) on delete cascade deferrable initially deferred,
    created_at timestamptz not null default now(),
    primary key (project_id, request_id)
);

create table api_token (
    id uuid primary key,
    -- SHA-256 of the secret; the secret itself is never stored.
    token_hash bytea not null unique,
    kind text not null check (kind in ('ADMIN', 'PROJECT', 'HOST')),
    project_id text references project (id) on delete cascade,
    host_id text,
    description text not null default '',
    -- True for the admin token that comes from the server's configuration.
    bootstrap boolean not null default false,
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    check ((kind = 'PROJECT') = (project_id is not null)),
    check ((kind = 'HOST') = (host_id is not null))
);
