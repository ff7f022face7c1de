-- Retention (docs/architecture.md#protection-of-the-control-plane): the background
-- sweep removes finished operations and requestId claims past --operation-retention.
create index operation_ended_idx on operation (ended_at) where done;
create index request_created_idx on request (created_at);
-- Deleting an operation cascades to its requests: find them without a scan.
create index request_operation_idx on request (operation_id);
