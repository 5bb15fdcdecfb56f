//! live: the HTTP endpoints a rollout controller reads during a soak (`/metrics`, `/verdict`,
//! `/healthz`), answered from pages rendered once per published evaluation.

mod http;
pub mod render;
pub mod server;

pub use render::{Snapshot, metrics, verdict_json};
pub use server::{LiveError, LiveServer, serve};
