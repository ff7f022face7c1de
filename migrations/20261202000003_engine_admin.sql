-- The password of each instance's privileged engine user (`cacheplane-agent`), shared by
-- all its nodes: the agents authenticate their own connections with it, and replicas their
-- links to the primary. The tenant's AUTH string no longer grants control of the engine
-- (docs/architecture.md#locked-down-engine). 64 hex digits from two random UUIDs (244
-- random bits from the server's strong generator), drawn per row: existing instances get
-- one too. Never returned by the public API.
alter table instance
    add column engine_admin_secret text not null
        default replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
