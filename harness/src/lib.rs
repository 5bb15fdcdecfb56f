//! leakgate: an open-loop load generator that also samples the target's memory and judges leaks.
//!
//! The modules follow the data flow of one run (see ARCHITECTURE.md):
//! `scenario` → `supervise` → `load` / `probe` → `verdict` → `report`, with `cli` on top.

pub mod cli;
pub mod diagnose;
pub mod exit;
pub mod heap;
pub mod live;
pub mod load;
pub mod merge;
pub mod probe;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod store;
pub mod supervise;
pub mod verdict;
