//! The spec's effect table and the trace's effect kinds are one vocabulary.
//! This crate sees both (`assay-spec` must not depend on `assay-trace`).

#[test]
fn effect_table_matches_trace_kinds() {
    let table: Vec<&str> = assay_spec::effects::kind_names().collect();
    let trace: Vec<&str> = assay_trace::EffectKind::ALL
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(table, trace);
    assert_eq!(table, assay_spec::condition::EFFECT_KINDS);
    for k in assay_trace::EffectKind::ALL {
        assert_eq!(assay_trace::EffectKind::from_name(k.name()), Some(k));
    }
}
