//! Running an importer's embedded Python script.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `script` with `python` in isolated mode (`-I`, so nothing in the
/// working directory or the environment can shadow a module the script or
/// the benchmark imports), fed on stdin so it never depends on a path of
/// its own; `args` follow `-`.
pub(crate) fn run_script<I, S>(
    python: &Path,
    args: I,
    script: &'static str,
) -> std::io::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(python)
        .arg("-I")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written from another thread: a large script could otherwise fill the
    // pipe while the child fills stdout.
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out)
}
