-- TLS in transit (docs/architecture.md#tls-in-transit).
--
-- transit_encryption_mode is set at create only. server_ca_certs holds the public part
-- clients need (Memorystore's serverCaCerts: serial, PEM, times, SHA-1 fingerprint) and
-- is read with the instance row; the private keys live in instance_tls, a table of their
-- own that no instance query selects, so they cannot reach a response by accident.
alter table instance
    add column transit_encryption_mode text not null default 'DISABLED'
        check (transit_encryption_mode in ('DISABLED', 'SERVER_AUTHENTICATION')),
    add column server_ca_certs jsonb not null default '[]';

-- One row per TLS instance: its CA's key (to sign new server certificates on rotation)
-- and its current server certificate and key (handed to its agents in the host config,
-- which they need to serve TLS). Kept in clear, like the AUTH string: the API must
-- read them to do its work, and PostgreSQL is already the place every secret of the
-- control plane lives. Never returned by any endpoint but the host config, never logged.
create table instance_tls (
    instance_id uuid primary key references instance (id) on delete cascade,
    ca_cert text not null,
    ca_key text not null,
    server_cert text not null,
    server_key text not null,
    -- Decimal serial of the current server certificate.
    server_serial text not null,
    rotated_at timestamptz not null default now()
);
