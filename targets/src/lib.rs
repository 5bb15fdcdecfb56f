//! Reference services with switchable, well-understood memory leaks, for proving leakgate.
//!
//! Each leak mode is faithful to how the leak happens in real services; `none` is the fixed
//! counterpart. Both binaries (`rest-target`, `grpc-target`) share the leak logic here.

pub mod accept;
pub mod admin;
pub mod cache;
pub mod common;
pub mod conn;
pub mod grpc;
pub mod metrics;
pub mod native;
pub mod rest;
pub mod tasks;
pub mod upstream;
