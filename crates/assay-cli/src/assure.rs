//! `assay assure`: weigh an assurance case; evidence bundles (sign, verify); the
//! case schema, the instrument inventory and the built-in policy.

use std::path::{Path, PathBuf};

use crate::fail;
use crate::verify::{load_public_key, load_signing_key};

/// `assay assure sign FILES --key KEY --base DIR --out FILE`.
pub(crate) fn cmd_sign(files: &[PathBuf], key: &Path, base: &Path, out: &Path) -> u8 {
    let key = match load_signing_key(key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let bundle = match assay_assure::sign_files(base, files, &key) {
        Ok(b) => b,
        Err(e) => return fail(e, 2),
    };
    let text = serde_json::to_string_pretty(&bundle).expect("a bundle serialises") + "\n";
    if let Err(e) = assay_run::write_atomic(out, text.as_bytes()) {
        return fail(e, 2);
    }
    println!(
        "signed {} evidence file(s) with key {} → {}",
        bundle.envelopes.len(),
        key.public().to_hex(),
        out.display()
    );
    0
}

/// `assay assure verify BUNDLE --key PUBKEY [--base DIR]`.
pub(crate) fn cmd_verify(bundle: &Path, key: &Path, base: Option<&Path>) -> u8 {
    let key = match load_public_key(Some(key)) {
        Ok(Some(k)) => k,
        Ok(None) => unreachable!("a key path was given"),
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(bundle) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", bundle.display()), 2),
    };
    let parsed: assay_assure::Bundle = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                format!("{}: not an evidence bundle: {e}", bundle.display()),
                2,
            );
        }
    };
    let base = base.map(Path::to_path_buf).unwrap_or_else(|| {
        bundle
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let report = assay_assure::verify_bundle(&parsed, &base, &key);
    for s in &report.verified {
        println!("ok   {s}");
    }
    for p in &report.problems {
        println!("FAIL {p}");
    }
    if report.ok() {
        println!(
            "bundle verified: {} subject(s), signatures by {}",
            report.verified.len(),
            key.to_hex()
        );
        0
    } else {
        1
    }
}

/// `assay assure CASE.yaml --out DIR [--policy FILE] [--alt-policy FILE]… [--key KEY] [--gate]`.
pub(crate) fn cmd_assess(args: &crate::AssessArgs) -> u8 {
    let (Some(case), Some(out)) = (&args.case, &args.out) else {
        return fail("`assay assure` needs a case file and --out DIR", 2);
    };
    let opts = assay_assure::AssessOptions {
        policy: args.policy.clone(),
        alt_policies: args.alt_policy.clone(),
    };
    let (assessment, loaded) = match assay_assure::assess_case(case, &opts) {
        Ok(x) => x,
        Err(e) => return fail(e, 2),
    };
    let key = match &args.key {
        Some(k) => match load_signing_key(k) {
            Ok(k) => Some(k),
            Err(code) => return code,
        },
        None => None,
    };
    let nodes = assay_assure::gsn::nodes(&loaded.case, &assessment);
    let svg = assay_assure::gsn::to_svg(&nodes);
    let mut files: Vec<(&str, String)> = vec![
        (
            "assurance.json",
            serde_json::to_string_pretty(&assessment).expect("an assessment serialises") + "\n",
        ),
        ("report.md", assay_assure::report::markdown(&assessment)),
        ("report.html", assay_assure::report::html(&assessment, &svg)),
        ("gsn.yaml", assay_assure::gsn::to_yaml(&nodes)),
        ("gsn.svg", svg),
    ];
    if let Some(key) = &key {
        let base = case
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let evidence: Vec<PathBuf> = loaded
            .items
            .values()
            .map(|i| i.record.path.clone())
            .collect();
        match assay_assure::sign_files(&base, &evidence, key) {
            Ok(b) => files.push((
                "bundle.json",
                serde_json::to_string_pretty(&b).expect("a bundle serialises") + "\n",
            )),
            Err(e) => return fail(e, 2),
        }
    }
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(format!("cannot create {}: {e}", out.display()), 2);
    }
    for (name, text) in &files {
        if let Err(e) = assay_run::write_atomic(&out.join(name), text.as_bytes()) {
            return fail(e, 2);
        }
    }
    println!(
        "{} · policy {} · {} claim(s), {} evidence item(s)",
        assessment.case.name,
        assessment.policy.name,
        assessment.claims.len(),
        assessment.evidence.len()
    );
    for c in &assessment.claims {
        println!(
            "  {:<12} {:<28} P = {:.4} [{:.4}, {:.4}]  max reachable {:.4}  access gap: {}",
            c.id,
            c.verdict.label(),
            c.posterior,
            c.posterior_bounds[0],
            c.posterior_bounds[1],
            c.max_reachable,
            if c.access.missing.is_empty() {
                "none".to_string()
            } else {
                c.access.missing.join(", ")
            }
        );
        // Why, in the words of the verdict (the report has the full derivation).
        for r in &c.verdict.reasons {
            println!("      - {r}");
        }
    }
    if let Some(s) = &assessment.sensitivity {
        let moved: Vec<&str> = s
            .claims
            .iter()
            .filter(|c| !c.stable)
            .map(|c| c.id.as_str())
            .collect();
        println!(
            "  sensitivity over {} policies: {}",
            s.policies.len(),
            if moved.is_empty() {
                "no verdict depends on the policy".to_string()
            } else {
                format!("verdicts of {} depend on the policy", moved.join(", "))
            }
        );
    }
    println!("→ {}", out.display());
    if args.gate {
        let failing: Vec<&str> = assessment
            .claims
            .iter()
            .filter(|c| c.asserted && assessment.top_level.contains(&c.id))
            .filter(|c| c.verdict.status != assay_assure::Status::Supported)
            .map(|c| c.id.as_str())
            .collect();
        if !failing.is_empty() {
            eprintln!(
                "gate: asserted top-level claim(s) not supported: {}",
                failing.join(", ")
            );
            return 1;
        }
    }
    0
}

/// `assay assure schema [--out FILE]`.
pub(crate) fn cmd_schema(out: Option<&Path>) -> u8 {
    let text = serde_json::to_string_pretty(&assay_assure::case::case_schema())
        .expect("a schema serialises")
        + "\n";
    match out {
        Some(p) => match assay_run::write_atomic(p, text.as_bytes()) {
            Ok(()) => 0,
            Err(e) => fail(e, 2),
        },
        None => {
            print!("{text}");
            0
        }
    }
}

/// `assay assure instruments`.
pub(crate) fn cmd_instruments() -> u8 {
    let inv = assay_assure::data::Inventory::builtin();
    println!(
        "instrument inventory {} ({} instruments)",
        inv.version,
        inv.instruments.len()
    );
    for i in &inv.instruments {
        println!(
            "{} — {} [{}; {}; verifier access: {}]",
            i.id,
            i.title,
            i.confidence,
            if i.binding { "binding" } else { "voluntary" },
            if i.verifier_access.is_empty() {
                "none guaranteed".to_string()
            } else {
                i.verifier_access.join(", ")
            }
        );
        for r in &i.requirements {
            println!(
                "  {} ({}): {} | properties: {} | needs: {}",
                r.id,
                r.confidence,
                r.text,
                if r.properties.is_empty() {
                    "process".to_string()
                } else {
                    r.properties
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                r.required_access.join(", ")
            );
        }
        for s in &i.sources {
            println!("  source: {} <{}>", s.title, s.url);
        }
    }
    0
}

/// `assay assure policy`.
pub(crate) fn cmd_policy() -> u8 {
    print!("{}", assay_assure::data::POLICY_YAML);
    0
}
