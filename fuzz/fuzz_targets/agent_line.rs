//! Whatever an `exec-jsonl` agent writes on stdout is read line by line within the
//! message cap and parsed without panicking; no line past the cap is ever returned.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small cap so the bound itself is exercised.
    let (cap, input) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c) * 4 + 1, rest),
        None => return,
    };
    let _ = assay_mcp::fuzzing::agent_lines(input, cap);
});
