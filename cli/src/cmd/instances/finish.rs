//! What a command that starts an operation does with it: with --async print it,
//! otherwise wait for it and print what it left.

use cacheplane_types::Operation;

use super::super::operations::{self, LroArgs};
use super::super::Ctx;
use super::print;
use crate::error::Result;
use crate::output::Format;

/// The `requestId` query parameter (see [`LroArgs::request_id_query`]).
pub fn request_id(lro: &LroArgs) -> Vec<(&'static str, &str)> {
    lro.request_id_query()
}

/// After a mutating call: with --async, print the operation; otherwise wait for it and
/// print the instance it left.
pub async fn finish(ctx: &Ctx, op: Operation, lro: &LroArgs) -> Result<()> {
    if lro.no_wait {
        return print_async(ctx, op);
    }
    let op = operations::wait(ctx, op, lro.timeout).await?;
    match op.response.as_ref().and_then(|r| r.instance()) {
        Some(inst) => print(ctx.format, inst),
        None => operations::print(ctx, &op),
    }
}

/// With --async: prints the operation, and says how to wait for it.
pub fn print_async(ctx: &Ctx, op: Operation) -> Result<()> {
    operations::print(ctx, &op)?;
    let op = operations::check(op)?;
    if !op.done && ctx.format == Format::Table {
        eprintln!("`cachectl operations wait {}` waits for it.", op.name);
    }
    Ok(())
}
