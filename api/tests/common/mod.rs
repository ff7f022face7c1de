//! What the API's integration tests share beyond the test kit (`cacheplane-testkit`:
//! the database per test, the API as a process or in-process, fake and real agents):
//! the API's own requests and assertions.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod checks;
pub mod client;
pub mod stack;
