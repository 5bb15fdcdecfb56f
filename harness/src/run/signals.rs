//! Stopping a run: SIGINT (Ctrl-C) and SIGTERM stop it gracefully (it still judges and writes
//! every report); a second signal exits at once, keeping what is already on disk.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A run's stop switch and why it was pulled (first reason wins).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    why: Arc<OnceLock<String>>,
}

impl Stop {
    /// A switch that is not pulled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token cancelled when the run is stopped.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Stops the run; `why` is kept when this is the first stop.
    pub fn stop(&self, why: impl Into<String>) {
        let _ = self.why.set(why.into());
        self.token.cancel();
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the run was stopped, when it was.
    pub fn reason(&self) -> Option<String> {
        self.why.get().cloned()
    }
}

/// Exit status after a second signal: 128 + the signal number, as shells report it.
fn forced_exit(signal: i32) -> ! {
    std::process::exit(128 + signal)
}

/// Watches SIGINT and SIGTERM on a thread of its own: the first stops `stop` gracefully, a
/// second exits the process at once.
pub fn install(stop: Stop) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let first = tokio::select! {
                _ = int.recv() => ("SIGINT", libc::SIGINT),
                _ = term.recv() => ("SIGTERM", libc::SIGTERM),
            };
            eprintln!(
                "\nleakgate: {} received: stopping; the verdict so far and every report will be \
                 written (send it again to quit at once)",
                first.0
            );
            stop.stop(format!("stopped by {}", first.0));
            // A second signal in quick succession (one key press seen twice) is not a second
            // request.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let second = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            forced_exit(second);
        });
    });
}
