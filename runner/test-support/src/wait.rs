//! Waiting on conditions with deadlines instead of fixed sleeps: poll until the
//! condition holds, and give up (false / None, or a panic naming what was awaited) once
//! the deadline passes. Deadlines are generous: they bound a broken test, they are not
//! the expected duration.

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll `f` every `every` until it returns `Some`, for at most `timeout`.
pub fn poll_some<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Poll `f` every `every` until it holds, for at most `timeout`: whether it held.
pub fn poll(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    poll_some(timeout, every, || f().then_some(())).is_some()
}

/// Poll `f` (every 100 ms) until it holds; panic naming `what` at the deadline.
pub fn until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    assert!(
        poll(timeout, Duration::from_millis(100), f),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// [`poll_some`] for async conditions, sleeping on the tokio timer between tries.
pub async fn poll_some_async<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll`] for async conditions.
pub async fn poll_async<F, Fut>(timeout: Duration, every: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_some_async(timeout, every, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
    .is_some()
}
