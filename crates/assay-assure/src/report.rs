//! The auditor's report: Markdown and a self-contained HTML page (no network),
//! both rendered from the same [`Assessment`].

use std::fmt::Write;

use crate::compute::{Assessment, ClaimReport};
use crate::gsn::esc;

const MEANING: &str = "Weights are policy, not measurement. Each evidence item's weight is the log10 of a likelihood ratio the case states (or the policy's default), capped by the policy for its evidence class and the claim's property type; items of one class combine as max + λ × the rest, capped again, because correlated methods share blind spots. The posterior adds the classes' weights to the prior's log-odds, which assumes the classes are conditionally independent given the claim. Bounds through subclaims need no independence assumption (Fréchet). A claim is fragile when it is asserted but (i) evidence it rests on cannot be reproduced by an independent party, or (ii) the classes present cannot reach the target for its property type however much of them there is. Fragile does not mean false: it means the evidence does not carry the claim. The sensitivity table shows which verdicts change when the policy's caps change.";

fn status_cell(c: &ClaimReport) -> String {
    c.verdict.label()
}

/// The checks an evidence item failed, one phrase each.
fn failed_checks(e: &crate::compute::ItemReport) -> Vec<String> {
    e.checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| format!("{} {}: {}", c.what, c.subject, c.detail))
        .collect()
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

/// The report in Markdown.
pub fn markdown(a: &Assessment) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Assurance report: {}\n", a.case.name);
    let _ = writeln!(
        s,
        "Case `{}` (sha256 `{}`), policy **{}** {} ({}), access vocabulary {}, instrument inventory {}, {} {}.\n",
        a.case.file,
        a.case.sha256,
        a.policy.name,
        a.policy.version,
        a.policy.source,
        a.data.access,
        a.data.instruments,
        a.tool.name,
        a.tool.version
    );
    if let Some(d) = &a.system.description {
        let _ = writeln!(s, "System under assessment: {d}\n");
    }
    for m in &a.system.models {
        let _ = writeln!(s, "- model **{}**: digest `{}`", m.name, m.digest);
    }
    for g in &a.system.agents {
        let _ = writeln!(
            s,
            "- agent **{}**{}",
            g.name,
            g.agents_file_sha256
                .as_ref()
                .map(|d| format!(": agents file sha256 `{d}`"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\n## Verdicts\n");
    let _ = writeln!(
        s,
        "| claim | property | target | posterior [bounds] | max reachable | verdict | defeaters eliminated/identified |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for c in &a.claims {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {:.4} [{:.4}, {:.4}] | {:.4} | {} | {} |",
            c.id,
            c.property_type.as_str(),
            c.family.as_str(),
            c.target,
            c.posterior,
            c.posterior_bounds[0],
            c.posterior_bounds[1],
            c.max_reachable,
            status_cell(c),
            c.defeaters.baconian
        );
    }
    for c in &a.claims {
        let _ = writeln!(s, "\n## Claim {}: {}\n", c.id, md_cell(&c.statement));
        let _ = writeln!(
            s,
            "**{}**. {}\n",
            status_cell(c),
            c.verdict
                .reasons
                .iter()
                .map(|r| md_cell(r))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !c.items.is_empty() {
            let _ = writeln!(
                s,
                "| evidence | class | polarity | LR (source) | raw | cap | weight | counted |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
            for i in &c.items {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:?} | {} ({}) | {:.3} | {:.3} | {:.3} | {} |",
                    i.id,
                    i.evidence_class,
                    i.polarity,
                    i.likelihood_ratio,
                    i.likelihood_ratio_source,
                    i.raw_bans,
                    i.cap_bans,
                    i.weight_bans,
                    if i.counted {
                        "yes".to_string()
                    } else {
                        format!("no: {}", md_cell(i.note.as_deref().unwrap_or("")))
                    }
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "- access required ({}): {}",
            c.access.required_source,
            list(&c.access.required)
        );
        let _ = writeln!(
            s,
            "- access used: {} (levels: {})",
            list(&c.access.used),
            list(&c.access.levels_used)
        );
        let _ = writeln!(s, "- **access gap**: {}", list(&c.access.missing));
        let _ = writeln!(
            s,
            "- max reachable with the classes present: {:.4}; at the access used: {:.4}",
            c.max_reachable, c.max_reachable_at_access
        );
        let _ = writeln!(
            s,
            "- **weight gap** (no evidence at this access can supply it): {:.3} ban; evidence gap: {:.3} ban",
            c.weight_gap_bans, c.evidence_gap_bans
        );
        let _ = writeln!(
            s,
            "- defeaters: {} eliminated of {} identified, {} accepted, {} open",
            c.defeaters.eliminated, c.defeaters.identified, c.defeaters.accepted, c.defeaters.open
        );
        let _ = writeln!(s, "\nDerivation:\n");
        for d in &c.derivation {
            let _ = writeln!(s, "1. {}", md_cell(d));
        }
    }
    let _ = writeln!(s, "\n## Evidence\n");
    let _ = writeln!(
        s,
        "| id | class | polarity | access | reproducible | problems |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for e in &a.evidence {
        let bad = failed_checks(e);
        let _ = writeln!(
            s,
            "| {} | {} | {:?} | {} | {} | {} |",
            e.id,
            e.evidence_class,
            e.polarity,
            e.access.join(", "),
            if e.reproducible { "yes" } else { "no" },
            md_cell(&list(&bad))
        );
    }
    if !a.unused_evidence.is_empty() {
        let _ = writeln!(
            s,
            "\nListed but cited by no claim: {}",
            a.unused_evidence.join(", ")
        );
    }
    if !a.instruments.is_empty() {
        let _ = writeln!(s, "\n## Governance instruments\n");
        for i in &a.instruments {
            let _ = writeln!(
                s,
                "### {} — {} ({}{})\n\nVerifier access the text guarantees: {}. Coverage: {} of {} property requirements supported ({} answered). Access missing from the evidence: {}. Access the text does not guarantee a verifier (audit gap): {}. Largest weight gap at the guaranteed access: {}.\n",
                i.id,
                i.title,
                i.confidence,
                if i.binding { ", binding" } else { "" },
                list(&i.verifier_access),
                i.supported,
                i.bearing_on_properties,
                i.answered,
                list(&i.access_missing),
                list(&i.access_not_guaranteed),
                i.max_weight_gap_at_guaranteed_access_bans
                    .map_or("—".into(), |g| format!("{g:.3} ban"))
            );
            let _ = writeln!(
                s,
                "| requirement | status | answered by | access missing | not guaranteed | weight gap at guaranteed access | confidence |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|");
            for r in &i.requirements {
                let _ = writeln!(
                    s,
                    "| {}: {} | {} | {} ({}) | {} | {} | {} | {} |",
                    r.id,
                    md_cell(&r.text),
                    r.status,
                    list(&r.answered_by),
                    r.matched_by,
                    list(&r.access_missing),
                    list(&r.access_not_guaranteed),
                    r.weight_gap_at_guaranteed_access_bans
                        .map_or("—".into(), |g| format!("{g:.3} ban")),
                    r.confidence
                );
            }
            s.push('\n');
        }
    }
    if let Some(sens) = &a.sensitivity {
        let _ = writeln!(s, "\n## Sensitivity to the policy\n");
        let _ = write!(s, "| claim |");
        for p in &sens.policies {
            let _ = write!(s, " {} |", p.name);
        }
        let _ = write!(s, " stable |\n|---|");
        for _ in &sens.policies {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s, "---|");
        for c in &sens.claims {
            let _ = write!(s, "| {} |", c.id);
            for o in &c.outcomes {
                let _ = write!(s, " {} ({:.3}) |", o.status.as_str(), o.posterior);
            }
            let _ = writeln!(s, " {} |", if c.stable { "yes" } else { "**no**" });
        }
        s.push('\n');
        for p in &sens.policies {
            let _ = writeln!(s, "- {}: {}", p.name, p.change);
        }
    }
    let _ = writeln!(s, "\n## What these numbers mean\n\n{MEANING}");
    s
}

/// The report as one self-contained HTML page, with the GSN diagram inline.
pub fn html(a: &Assessment, gsn_svg: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Assurance report: {}</title><style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}.supported{{color:#1e7e34;font-weight:bold}}.fragile{{color:#b26a00;font-weight:bold}}.refuted{{color:#b00020;font-weight:bold}}.unsupported,.undeveloped{{color:#555;font-weight:bold}}.gsn{{overflow:auto;border:1px solid #ddd}}code{{background:#f6f6f6}}</style></head><body>\n",
        esc(&a.case.name)
    );
    let _ = writeln!(s, "<h1>Assurance report: {}</h1>", esc(&a.case.name));
    let _ = writeln!(
        s,
        "<p>Case <code>{}</code> (sha256 <code>{}</code>), policy <b>{}</b> {} ({}), access vocabulary {}, instrument inventory {}, {} {}.</p>",
        esc(&a.case.file),
        esc(&a.case.sha256),
        esc(&a.policy.name),
        esc(&a.policy.version),
        esc(&a.policy.source),
        esc(&a.data.access),
        esc(&a.data.instruments),
        esc(&a.tool.name),
        esc(&a.tool.version)
    );
    let _ = writeln!(
        s,
        "<h2>Verdicts</h2><table id=\"verdicts\"><tr><th>claim</th><th>statement</th><th>property</th><th>target</th><th>posterior [bounds]</th><th>max reachable</th><th>verdict</th><th>defeaters</th></tr>"
    );
    for c in &a.claims {
        let _ = writeln!(
            s,
            "<tr data-claim=\"{}\"><td><a href=\"#claim-{}\">{}</a></td><td>{}</td><td>{} {}</td><td>{}</td><td>{:.4} [{:.4}, {:.4}]</td><td>{:.4}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.id),
            esc(&c.id),
            esc(&c.statement),
            c.property_type.as_str(),
            c.family.as_str(),
            c.target,
            c.posterior,
            c.posterior_bounds[0],
            c.posterior_bounds[1],
            c.max_reachable,
            c.verdict.status.as_str(),
            esc(&status_cell(c)),
            esc(&c.defeaters.baconian)
        );
    }
    let _ = writeln!(s, "</table>");
    let _ = writeln!(
        s,
        "<h2>Argument (GSN)</h2><div class=\"gsn\">{gsn_svg}</div>"
    );
    for c in &a.claims {
        let _ = writeln!(
            s,
            "<h2 id=\"claim-{}\">Claim {}: {}</h2>",
            esc(&c.id),
            esc(&c.id),
            esc(&c.statement)
        );
        let _ = writeln!(
            s,
            "<p class=\"{}\">{}</p><ul>",
            c.verdict.status.as_str(),
            esc(&status_cell(c))
        );
        for r in &c.verdict.reasons {
            let _ = writeln!(s, "<li>{}</li>", esc(r));
        }
        let _ = writeln!(s, "</ul>");
        if !c.items.is_empty() {
            let _ = writeln!(
                s,
                "<table><tr><th>evidence</th><th>class</th><th>polarity</th><th>LR (source)</th><th>raw</th><th>cap</th><th>weight</th><th>counted</th></tr>"
            );
            for i in &c.items {
                let _ = writeln!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{} ({})</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
                    esc(&i.id),
                    esc(&i.evidence_class),
                    i.polarity,
                    i.likelihood_ratio,
                    esc(&i.likelihood_ratio_source),
                    i.raw_bans,
                    i.cap_bans,
                    i.weight_bans,
                    if i.counted {
                        "yes".to_string()
                    } else {
                        esc(&format!("no: {}", i.note.as_deref().unwrap_or("")))
                    }
                );
            }
            let _ = writeln!(s, "</table>");
        }
        let _ = writeln!(
            s,
            "<p>Access required: {}. Used: {} (levels: {}). <b>Access gap</b>: {}. Max reachable: {:.4} with the classes present, {:.4} at the access used. <b>Weight gap</b>: {:.3} ban; evidence gap: {:.3} ban. Defeaters: {} eliminated of {} identified, {} accepted, {} open.</p>",
            esc(&list(&c.access.required)),
            esc(&list(&c.access.used)),
            esc(&list(&c.access.levels_used)),
            esc(&list(&c.access.missing)),
            c.max_reachable,
            c.max_reachable_at_access,
            c.weight_gap_bans,
            c.evidence_gap_bans,
            c.defeaters.eliminated,
            c.defeaters.identified,
            c.defeaters.accepted,
            c.defeaters.open
        );
        let _ = writeln!(s, "<details><summary>Derivation</summary><ol>");
        for d in &c.derivation {
            let _ = writeln!(s, "<li>{}</li>", esc(d));
        }
        let _ = writeln!(s, "</ol></details>");
    }
    let _ = writeln!(
        s,
        "<h2>Evidence</h2><table id=\"evidence\"><tr><th>id</th><th>class</th><th>polarity</th><th>access</th><th>reproducible</th><th>problems</th></tr>"
    );
    for e in &a.evidence {
        let bad = failed_checks(e);
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.id),
            esc(&e.evidence_class),
            e.polarity,
            esc(&e.access.join(", ")),
            if e.reproducible { "yes" } else { "no" },
            esc(&list(&bad))
        );
    }
    let _ = writeln!(s, "</table>");
    if !a.instruments.is_empty() {
        let _ = writeln!(s, "<h2>Governance instruments</h2>");
        for i in &a.instruments {
            let _ = writeln!(
                s,
                "<h3>{} — {} ({})</h3><p>Verifier access guaranteed: {}. Coverage: {} of {} property requirements supported. Audit gap in access: {}.</p><table><tr><th>requirement</th><th>status</th><th>answered by</th><th>access missing</th><th>not guaranteed</th><th>weight gap</th></tr>",
                esc(&i.id),
                esc(&i.title),
                esc(&i.confidence),
                esc(&list(&i.verifier_access)),
                i.supported,
                i.bearing_on_properties,
                esc(&list(&i.access_not_guaranteed))
            );
            for r in &i.requirements {
                let _ = writeln!(
                    s,
                    "<tr><td>{}: {}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.id),
                    esc(&r.text),
                    esc(&r.status),
                    esc(&list(&r.answered_by)),
                    esc(&r.matched_by),
                    esc(&list(&r.access_missing)),
                    esc(&list(&r.access_not_guaranteed)),
                    r.weight_gap_at_guaranteed_access_bans
                        .map_or("—".into(), |g| format!("{g:.3} ban"))
                );
            }
            let _ = writeln!(s, "</table>");
        }
    }
    if let Some(sens) = &a.sensitivity {
        let _ = write!(
            s,
            "<h2>Sensitivity to the policy</h2><table id=\"sensitivity\"><tr><th>claim</th>"
        );
        for p in &sens.policies {
            let _ = write!(s, "<th title=\"{}\">{}</th>", esc(&p.change), esc(&p.name));
        }
        let _ = writeln!(s, "<th>stable</th></tr>");
        for c in &sens.claims {
            let _ = write!(s, "<tr><td>{}</td>", esc(&c.id));
            for o in &c.outcomes {
                let _ = write!(
                    s,
                    "<td class=\"{}\">{} ({:.3})</td>",
                    o.status.as_str(),
                    o.status.as_str(),
                    o.posterior
                );
            }
            let _ = writeln!(s, "<td>{}</td></tr>", if c.stable { "yes" } else { "no" });
        }
        let _ = writeln!(s, "</table>");
    }
    let _ = writeln!(
        s,
        "<h2>What these numbers mean</h2><p>{}</p></body></html>",
        esc(MEANING)
    );
    s
}
