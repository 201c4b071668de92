//! The headless Hearth client as a library: the demo runner, the report types and the rule for
//! "media flowed", shared by the `hearth-call` binary and the benchmarks.

pub mod demo;
pub mod flow;
pub mod observe;
pub mod report;
pub mod script;
