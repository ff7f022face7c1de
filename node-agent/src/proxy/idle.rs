//! Idle detection for a relayed connection: the streams mark each read that moved
//! bytes, and a coarse timer closes the connection once a whole timeout passed without
//! one. A mark is one relaxed store per read; the timer wakes a few times per timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Looks per timeout: a silent connection closes between 1 and 1 + 1/LOOKS timeouts.
const LOOKS: u32 = 4;

/// Whether bytes moved since the timer last looked.
#[derive(Debug, Default, Clone)]
pub struct Activity(Arc<AtomicBool>);

impl Activity {
    /// Resolves once `timeout` passed without a marked read; never when it is zero.
    pub async fn idle(&self, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        let look = timeout / LOOKS;
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(look).await;
            if self.0.swap(false, Ordering::Relaxed) {
                quiet = Duration::ZERO;
            } else {
                quiet += look;
                if quiet >= timeout {
                    return;
                }
            }
        }
    }

    /// `stream`, marking this activity on every read that returns bytes.
    pub fn watch<S>(&self, stream: S) -> Watched<S> {
        Watched {
            stream,
            activity: self.clone(),
        }
    }
}

/// A stream whose reads mark an [`Activity`]; writes pass straight through.
#[derive(Debug)]
pub struct Watched<S> {
    stream: S,
    activity: Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.0.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
