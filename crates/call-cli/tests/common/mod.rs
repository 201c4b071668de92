//! What the `hearth-call` process tests share: the binary with its output captured, and the
//! arguments of a synthetic `join`.

use std::process::{Command, Stdio};

/// The `hearth-call` binary of this build, stdout and stderr captured.
pub fn hearth_call() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth-call"));
    c.stderr(Stdio::piped()).stdout(Stdio::piped());
    c
}

/// `join` on `url` as `name` with synthetic 320x240 media and a JSON report, then `extra`.
pub fn join_args(url: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "join",
        "--server",
        url,
        "--room",
        "ci",
        "--name",
        name,
        "--synthetic",
        "--json",
        "--width",
        "320",
        "--height",
        "240",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
