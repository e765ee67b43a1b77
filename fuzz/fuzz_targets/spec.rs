//! Any text given as a spec either loads or is refused with diagnostics; it never
//! panics, and a spec that validates always compiles into rules and a world.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(assay_spec::Document::Spec(loaded)) =
        assay_spec::load_document_str(text, Path::new("fuzz.yaml"))
    {
        assay_rules::Rules::new(&loaded.spec).expect("a valid spec compiles into rules");
        assay_world::WorldTemplate::new(&loaded.spec).expect("a valid spec builds a world");
    }
});
