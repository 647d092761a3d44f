//! Captures what the code under test logs, for tests that check logging.
//!
//! One global subscriber for the whole test binary, writing into a buffer of
//! the capturing thread only: thread-local subscribers would race with the
//! other tests over tracing's per-callsite interest cache and miss events.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Appends to this thread's capture buffer, if one is open; drops otherwise.
struct ThreadBuffer;

impl std::io::Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(buffer) = captured.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged on this thread while `f` runs (run it on a
/// current-thread runtime, as `#[tokio::test]` does by default).
pub(crate) async fn logged_during<F: std::future::Future>(f: F) -> (F::Output, String) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| ThreadBuffer)
            .try_init();
    });
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let output = f.await;
    let bytes = CAPTURED
        .with(|captured| captured.borrow_mut().take())
        .unwrap_or_default();
    (output, String::from_utf8_lossy(&bytes).into_owned())
}
