//! Free ports, and address ranges of a test's own.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// The port whose listener marks 127.X.0.0/16 as taken: every suite (API, CLI, bench)
/// follows this convention, so that tests running in parallel never put engines on the
/// same address.
pub fn supernet_guard_port(x: u8) -> u16 {
    41_000 + u16::from(x)
}

/// Holds 127.X.0.0/16 for as long as the listener lives; fails when another process
/// holds it.
pub fn hold_supernet(x: u8) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", supernet_guard_port(x)))
}

/// A /16 of 127.0.0.0/8 (`127.X.0.0/16`, X in 128..=250) that no other test process
/// holds, and the guard that holds it.
pub fn private_supernet() -> (String, TcpListener) {
    for x in 128..=250u8 {
        if let Ok(guard) = hold_supernet(x) {
            return (format!("127.{x}.0.0/16"), guard);
        }
    }
    panic!(
        "no free 127.X.0.0/16 for this test (ports {}-{} all taken)",
        supernet_guard_port(128),
        supernet_guard_port(250)
    );
}
