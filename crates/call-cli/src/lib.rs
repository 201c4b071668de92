//! The headless Hearth client as a library: the demo runner and the report types, shared by the
//! `hearth-call` binary and the benchmarks.

pub mod demo;
pub mod report;
