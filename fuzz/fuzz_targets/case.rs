//! Any text given as a case file either loads or is refused; it never panics, and a
//! case that loads compiles into rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(assay_spec::Document::Case(loaded)) =
        assay_spec::load_document_str(text, Path::new("fuzz-case.yaml"))
    {
        assay_rules::Rules::new(&loaded.case.spec).expect("a valid case compiles into rules");
    }
});
