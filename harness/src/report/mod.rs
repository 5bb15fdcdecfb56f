//! report: the run's files and what people read.

pub mod ndjson;
pub mod summary;
