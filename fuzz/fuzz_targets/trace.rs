//! Any bytes given as a trace are parsed, verified and scored without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = assay_trace::verify_jsonl(text, None);
    if let Ok(events) = assay_trace::parse_jsonl(text) {
        let kinds: Vec<_> = events.into_iter().map(|e| e.kind).collect();
        if let Some(assay_trace::EventKind::EpisodeStart(start)) = kinds.first()
            && let Some(doc) = &start.case_doc
            && let Ok(case) = serde_json::from_value::<assay_spec::Case>(doc.clone())
            && let Ok(rules) = assay_rules::Rules::new(&case.spec)
        {
            let _ = rules.score(start.threat.as_deref(), &kinds);
        }
    }
});
