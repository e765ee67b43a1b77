//! Any command line given to `shell.exec` in an example world runs without panicking,
//! and its output stays within the tool-result cap.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn template() -> &'static (assay_world::WorldTemplate, u64) {
    static T: OnceLock<(assay_world::WorldTemplate, u64)> = OnceLock::new();
    T.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ops/log-rotation.yaml");
        let loaded = assay_spec::load_file(&path).expect("example spec loads");
        let cap = loaded.spec.agent.limits.tool_result_bytes;
        (assay_world::WorldTemplate::new(&loaded.spec).expect("example world"), cap)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else {
        return;
    };
    let (tpl, cap) = template();
    let mut world = tpl.instantiate(&[], 7);
    let out = world.call("shell.exec", &serde_json::json!({ "command": command }));
    // The cap's marker may follow the capped text.
    assert!(out.output.len() as u64 <= cap + 256, "output past the cap");
});
