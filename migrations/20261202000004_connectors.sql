-- Connectors (docs/networking.md#connectors): a /28 of a network from which client
-- processes outside the network reach its instances. Its range comes from the same
-- allocator and the same exclusion constraint as instance ranges, so a connector range
-- never overlaps an instance range of its network.
create table connector (
    id uuid primary key,
    project_id text not null references project (id),
    -- Byte order ("C") so that list pages come in the same order on every cluster.
    region_id text collate "C" not null references region (id),
    name text collate "C" not null check (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    network_id uuid not null references network (id),
    state text not null check (state in ('CREATING', 'READY', 'DELETING')),
    -- netns mode only: the host that realises it and its Linux network namespace there.
    host_id text references host (id),
    namespace text unique,
    -- The host generation that carries its last change (added, or removed while
    -- DELETING): done once the host reports applying it.
    desired_generation bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint connector_name_key unique (project_id, region_id, name),
    check ((host_id is null) = (namespace is null)),
    check ((host_id is null) = (desired_generation is null))
);
create index connector_list_idx on connector (project_id, region_id, name);
create index connector_host_idx on connector (host_id) where host_id is not null;
create index connector_network_idx on connector (network_id);

-- An address range is held by an instance (PRIMARY, SECONDARY) or by a connector
-- (CONNECTOR); address_range_excl keeps covering them all.
alter table address_range drop constraint address_range_pkey;
alter table address_range alter column instance_id drop not null;
alter table address_range add column connector_id uuid references connector (id) on delete cascade;
alter table address_range drop constraint address_range_purpose_check;
alter table address_range add constraint address_range_purpose_check
    check (purpose in ('PRIMARY', 'SECONDARY', 'CONNECTOR'));
alter table address_range add constraint address_range_owner_check
    check ((instance_id is null) <> (connector_id is null)
           and (connector_id is null) = (purpose <> 'CONNECTOR'));
create unique index address_range_instance_key on address_range (instance_id, purpose) where instance_id is not null;
create unique index address_range_connector_key on address_range (connector_id) where connector_id is not null;

-- Operations on connectors: one running at a time per connector, as for instances.
alter table operation add column connector_id uuid references connector (id) on delete set null;
create unique index operation_one_active_connector_idx on operation (connector_id) where not done;

-- Pools never overlap within a project. Across projects the API decides by network
-- mode (docs/networking.md#network-pools): in netns mode each network has its own
-- bridges, so projects may reuse address space; in loopback and host modes every pool
-- shares one address space and the create transaction refuses an overlap under an
-- advisory lock.
alter table network drop constraint network_ip_range_excl;
alter table network add constraint network_ip_range_excl
    exclude using gist (project_id with =, ip_range inet_ops with &&);
