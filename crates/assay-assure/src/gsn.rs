//! The argument as a Goal Structuring Notation diagram: gsn2x's YAML (goals,
//! strategies, solutions, contexts, assumptions, justifications, and the
//! dialectic extension's counter goals and counter solutions with `challenges`
//! and `defeated`), and an SVG rendering of the same nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::case::{AssuranceCase, DefeaterStatus, DefeaterType, Polarity};
use crate::compute::{Assessment, ClaimReport, Status};

/// A GSN element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// A claim.
    Goal,
    /// How a goal is argued.
    Strategy,
    /// An evidence reference.
    Solution,
    /// Context.
    Context,
    /// An assumption.
    Assumption,
    /// A justification.
    Justification,
    /// A claim against an element (dialectic extension).
    CounterGoal,
    /// Evidence against an element (dialectic extension).
    CounterSolution,
}

impl NodeType {
    /// gsn2x's `nodeType` name.
    pub fn name(self) -> &'static str {
        match self {
            NodeType::Goal => "Goal",
            NodeType::Strategy => "Strategy",
            NodeType::Solution => "Solution",
            NodeType::Context => "Context",
            NodeType::Assumption => "Assumption",
            NodeType::Justification => "Justification",
            NodeType::CounterGoal => "CounterGoal",
            NodeType::CounterSolution => "CounterSolution",
        }
    }

    /// The id prefix gsn2x expects for the type.
    pub fn prefix(self) -> &'static str {
        match self {
            NodeType::Goal => "G",
            NodeType::Strategy => "S",
            NodeType::Solution => "Sn",
            NodeType::Context => "C",
            NodeType::Assumption => "A",
            NodeType::Justification => "J",
            NodeType::CounterGoal => "CG",
            NodeType::CounterSolution => "CSn",
        }
    }
}

/// One GSN element.
#[derive(Debug, Clone)]
pub struct Node {
    /// Id, prefixed by type.
    pub id: String,
    /// Type.
    pub node_type: NodeType,
    /// Text.
    pub text: String,
    /// Supporting elements.
    pub supported_by: Vec<String>,
    /// Contexts, assumptions, justifications.
    pub in_context_of: Vec<String>,
    /// Elements this counter element challenges.
    pub challenges: Vec<String>,
    /// No support yet.
    pub undeveloped: bool,
    /// Defeated by a counter element.
    pub defeated: bool,
    /// Verdict, for colouring goals.
    pub status: Option<Status>,
}

impl Node {
    fn new(node_type: NodeType, id: &str, text: String) -> Node {
        Node {
            id: format!("{}-{id}", node_type.prefix()),
            node_type,
            text,
            supported_by: Vec::new(),
            in_context_of: Vec::new(),
            challenges: Vec::new(),
            undeveloped: false,
            defeated: false,
            status: None,
        }
    }
}

/// Builds the GSN elements of an assessed case.
pub fn nodes(case: &AssuranceCase, a: &Assessment) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let reports: BTreeMap<&str, &ClaimReport> =
        a.claims.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut solutions: BTreeSet<String> = BTreeSet::new();
    let class_of: BTreeMap<&str, &str> = a
        .evidence
        .iter()
        .map(|e| (e.id.as_str(), e.evidence_class.as_str()))
        .collect();
    for claim in &case.claims {
        let Some(rep) = reports.get(claim.id.as_str()) else {
            continue;
        };
        let mut g = Node::new(
            NodeType::Goal,
            &claim.id,
            format!(
                "{}: {}\n[{}; P = {:.3}, target {}; {} {}]",
                claim.id,
                claim.statement,
                rep.verdict.label(),
                rep.posterior,
                rep.target,
                rep.property_type.as_str(),
                rep.family.as_str()
            ),
        );
        g.status = Some(rep.verdict.status);
        g.defeated = rep.verdict.status == Status::Refuted;
        for (k, text) in claim.context.iter().enumerate() {
            let c = Node::new(
                NodeType::Context,
                &format!("{}-{}", claim.id, k + 1),
                text.clone(),
            );
            g.in_context_of.push(c.id.clone());
            out.push(c);
        }
        let ctx = Node::new(
            NodeType::Context,
            &format!("{}-access", claim.id),
            format!(
                "Access required: {}\nused: {}\nmissing: {}",
                list(&rep.access.required),
                list(&rep.access.used),
                list(&rep.access.missing)
            ),
        );
        g.in_context_of.push(ctx.id.clone());
        out.push(ctx);
        for n in case
            .assumptions
            .iter()
            .filter(|n| n.claims.contains(&claim.id))
        {
            g.in_context_of.push(format!("A-{}", n.id));
        }
        if !claim.subclaims.is_empty() {
            let mut s = Node::new(
                NodeType::Strategy,
                &claim.id,
                format!(
                    "Argue over subclaims ({}); bounds without independence: [{:.3}, {:.3}]",
                    match claim.decomposition {
                        Some(crate::case::Decomposition::Diverse) => "diverse: any one suffices",
                        _ => "conjunctive: all are needed",
                    },
                    rep.posterior_bounds[0],
                    rep.posterior_bounds[1]
                ),
            );
            s.supported_by = claim.subclaims.iter().map(|x| format!("G-{x}")).collect();
            for n in case
                .justifications
                .iter()
                .filter(|n| n.claims.contains(&claim.id))
            {
                s.in_context_of.push(format!("J-{}", n.id));
            }
            g.supported_by.push(s.id.clone());
            out.push(s);
        } else if claim.evidence.is_empty() {
            g.undeveloped = true;
        } else {
            let mut s = Node::new(
                NodeType::Strategy,
                &claim.id,
                format!(
                    "Weigh the evidence under policy {} (capped weights, independence discount λ per class)",
                    a.policy.name
                ),
            );
            if rep
                .classes
                .iter()
                .map(|c| &c.evidence_class)
                .collect::<BTreeSet<_>>()
                .len()
                > 1
            {
                let an = Node::new(
                    NodeType::Assumption,
                    &format!("{}-classes-independent", claim.id),
                    "Evidence classes are conditionally independent given the claim (their weights add)".into(),
                );
                s.in_context_of.push(an.id.clone());
                out.push(an);
            }
            for n in case
                .justifications
                .iter()
                .filter(|n| n.claims.contains(&claim.id))
            {
                s.in_context_of.push(format!("J-{}", n.id));
            }
            for it in &rep.items {
                match it.polarity {
                    Polarity::Support => {
                        s.supported_by.push(format!("Sn-{}", it.id));
                    }
                    Polarity::Counter => {
                        let mut c = Node::new(
                            NodeType::CounterSolution,
                            &format!("{}-{}", claim.id, it.id),
                            format!(
                                "{} ({}): −{:.3} ban",
                                it.id, it.evidence_class, it.weight_bans
                            ),
                        );
                        c.challenges.push(g.id.clone());
                        out.push(c);
                    }
                }
                if it.polarity == Polarity::Support && solutions.insert(it.id.clone()) {
                    let e = case.evidence.iter().find(|e| e.id == it.id);
                    let file = e
                        .and_then(|e| e.file.clone().or(e.run.clone()))
                        .unwrap_or_default();
                    out.push(Node::new(
                        NodeType::Solution,
                        &it.id,
                        format!(
                            "{} ({})\n{}",
                            it.id,
                            class_of.get(it.id.as_str()).copied().unwrap_or("?"),
                            file
                        ),
                    ));
                }
            }
            if s.supported_by.is_empty() {
                s.undeveloped = true;
            }
            g.supported_by.push(s.id.clone());
            out.push(s);
        }
        out.push(g);
    }
    for n in &case.assumptions {
        out.push(Node::new(NodeType::Assumption, &n.id, n.text.clone()));
    }
    for n in &case.justifications {
        out.push(Node::new(NodeType::Justification, &n.id, n.text.clone()));
    }
    for d in &case.defeaters {
        let target = match d.kind {
            DefeaterType::Undermining => format!("Sn-{}", d.target),
            _ => format!("G-{}", d.target),
        };
        if d.kind == DefeaterType::Undermining && !solutions.contains(&d.target) {
            continue;
        }
        let status = match d.status {
            DefeaterStatus::Open => "open",
            DefeaterStatus::Eliminated => "eliminated",
            DefeaterStatus::Accepted => "accepted as residual doubt",
        };
        let mut c = Node::new(
            NodeType::CounterGoal,
            &d.id,
            format!(
                "{} ({} defeater, {status}): {}{}",
                d.id,
                match d.kind {
                    DefeaterType::Rebutting => "rebutting",
                    DefeaterType::Undermining => "undermining",
                    DefeaterType::Undercutting => "undercutting",
                },
                d.text,
                d.resolution
                    .as_ref()
                    .map(|r| format!("\n{r}"))
                    .unwrap_or_default()
            ),
        );
        c.challenges.push(target);
        c.defeated = d.status == DefeaterStatus::Eliminated;
        c.undeveloped = true;
        out.push(c);
    }
    // Goals first, then the rest, each in the order built.
    out.sort_by_key(|n| n.node_type != NodeType::Goal);
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// gsn2x YAML for the nodes.
pub fn to_yaml(nodes: &[Node]) -> String {
    let mut m = Map::new();
    for n in nodes {
        let mut o = Map::new();
        o.insert("text".into(), Value::String(n.text.clone()));
        o.insert("nodeType".into(), Value::String(n.node_type.name().into()));
        if !n.supported_by.is_empty() {
            o.insert("supportedBy".into(), json!(n.supported_by));
        }
        if !n.in_context_of.is_empty() {
            o.insert("inContextOf".into(), json!(n.in_context_of));
        }
        // gsn2x reads `challenges` as one element id (a two-element list would be
        // a relation); every counter element here challenges one element.
        if let Some(t) = n.challenges.first() {
            o.insert("challenges".into(), Value::String(t.clone()));
        }
        if n.undeveloped && n.supported_by.is_empty() {
            o.insert("undeveloped".into(), Value::Bool(true));
        }
        if n.defeated {
            o.insert("defeated".into(), Value::Bool(true));
        }
        m.insert(n.id.clone(), Value::Object(o));
    }
    format!(
        "# GSN argument in gsn2x format (render with `gsn2x FILE`); written by assay assure\n{}",
        assay_spec::yaml::emit(&Value::Object(m))
    )
}

const W: f64 = 230.0;
const LINE: f64 = 14.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 60.0;

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut cur = String::new();
        for word in para.split_whitespace() {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        lines.push(cur);
    }
    lines
}

/// Escapes text for XML and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Ellipse-shaped elements need room at their top and bottom.
fn is_round(t: NodeType) -> bool {
    matches!(
        t,
        NodeType::Solution
            | NodeType::CounterSolution
            | NodeType::Assumption
            | NodeType::Justification
    )
}

/// The bold id lines and the text lines of an element, wrapped to its box.
fn label_parts(n: &Node) -> (Vec<String>, Vec<String>) {
    let width = if is_round(n.node_type) { 30 } else { 36 };
    let id = format!("{}{}", n.id, if n.defeated { " ✗ defeated" } else { "" });
    let chars: Vec<char> = id.chars().collect();
    let id_lines = chars.chunks(width).map(|c| c.iter().collect()).collect();
    (id_lines, wrap(&n.text, width))
}

/// A layered SVG rendering: supported-by edges downwards, context and counter
/// elements beside the element they attach to.
pub fn to_svg(nodes: &[Node]) -> String {
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let supported: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.supported_by.iter().map(String::as_str))
        .collect();
    let side: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.in_context_of.iter().map(String::as_str))
        .chain(
            nodes
                .iter()
                .filter(|n| !n.challenges.is_empty())
                .map(|n| n.id.as_str()),
        )
        .collect();
    // Layers by longest path from the roots along supportedBy (the case is acyclic;
    // the guard only protects against a malformed node list).
    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stack: Vec<(&str, usize)> = nodes
        .iter()
        .filter(|n| !supported.contains(n.id.as_str()) && !side.contains(n.id.as_str()))
        .map(|n| (n.id.as_str(), 0))
        .collect();
    let mut guard = 0;
    while let Some((id, d)) = stack.pop() {
        guard += 1;
        if guard > 100_000 {
            break;
        }
        if layer.get(id).is_some_and(|&x| x >= d) {
            continue;
        }
        layer.insert(id, d);
        if let Some(n) = by_id.get(id) {
            stack.extend(n.supported_by.iter().map(|s| (s.as_str(), d + 1)));
        }
    }
    // Side elements sit in their host's layer.
    for n in nodes {
        if let Some(&d) = layer.get(n.id.as_str()) {
            for c in &n.in_context_of {
                layer.entry(c.as_str()).or_insert(d);
            }
        }
    }
    for n in nodes.iter().filter(|n| !n.challenges.is_empty()) {
        let d = n
            .challenges
            .iter()
            .filter_map(|t| layer.get(t.as_str()).copied())
            .min()
            .unwrap_or(0);
        layer.insert(n.id.as_str(), d);
    }
    for n in nodes {
        layer.entry(n.id.as_str()).or_insert(0);
    }
    let depth = layer.values().copied().max().unwrap_or(0);
    // Each element is followed by its contexts and challengers, so side edges stay short.
    let mut rows: Vec<Vec<&Node>> = vec![Vec::new(); depth + 1];
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for n in nodes.iter().filter(|n| !side.contains(n.id.as_str())) {
        let d = layer[n.id.as_str()];
        if placed.insert(n.id.as_str()) {
            rows[d].push(n);
        }
        let attached: Vec<&Node> = n
            .in_context_of
            .iter()
            .filter_map(|c| by_id.get(c.as_str()).copied())
            .chain(nodes.iter().filter(|c| c.challenges.contains(&n.id)))
            .collect();
        for c in attached {
            if layer[c.id.as_str()] == d && placed.insert(c.id.as_str()) {
                rows[d].push(c);
            }
        }
    }
    for n in nodes {
        if placed.insert(n.id.as_str()) {
            rows[layer[n.id.as_str()]].push(n);
        }
    }
    let mut pos: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new(); // x, y, height
    let mut y = 20.0;
    let mut width: f64 = 0.0;
    for row in &rows {
        let mut x = 20.0;
        let mut h_row: f64 = 0.0;
        for n in row {
            let (a, b) = label_parts(n);
            let h = 12.0
                + (a.len() + b.len()) as f64 * LINE
                + if is_round(n.node_type) { 20.0 } else { 0.0 };
            pos.insert(n.id.as_str(), (x, y, h));
            x += W + GAP_X;
            h_row = h_row.max(h);
        }
        width = width.max(x);
        y += h_row + GAP_Y;
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{y:.0}\" viewBox=\"0 0 {width:.0} {y:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n<defs><marker id=\"solid\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker><marker id=\"hollow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#fff\" stroke=\"#333\"/></marker></defs>\n"
    );
    // A side edge joins the facing sides of two elements of one row; any other
    // edge runs from the bottom of one element to the top of the other.
    let edge = |from: &str, to: &str| -> Option<(f64, f64, f64, f64)> {
        let (fx, fy, fh) = *pos.get(from)?;
        let (tx, ty, th) = *pos.get(to)?;
        Some(if layer.get(from) != layer.get(to) {
            if ty > fy {
                (fx + W / 2.0, fy + fh, tx + W / 2.0, ty)
            } else {
                (fx + W / 2.0, fy, tx + W / 2.0, ty + th)
            }
        } else if tx > fx {
            (fx + W, fy + fh / 2.0, tx, ty + th / 2.0)
        } else {
            (fx, fy + fh / 2.0, tx + W, ty + th / 2.0)
        })
    };
    let line = |svg: &mut String, (x1, y1, x2, y2): (f64, f64, f64, f64), style: &str| {
        svg.push_str(&format!(
            "<line x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" {style}/>\n"
        ));
    };
    for n in nodes {
        for s in &n.supported_by {
            if let Some(e) = edge(&n.id, s) {
                line(&mut svg, e, "stroke=\"#333\" marker-end=\"url(#solid)\"");
            }
        }
        for c in &n.in_context_of {
            if let Some(e) = edge(&n.id, c) {
                line(&mut svg, e, "stroke=\"#333\" marker-end=\"url(#hollow)\"");
            }
        }
        for t in &n.challenges {
            if let Some(e) = edge(&n.id, t) {
                line(
                    &mut svg,
                    e,
                    "stroke=\"#b00\" stroke-dasharray=\"5,3\" marker-end=\"url(#solid)\"",
                );
            }
        }
    }
    for n in nodes {
        let Some(&(x, y, h)) = pos.get(n.id.as_str()) else {
            continue;
        };
        let (fill, stroke) = match (n.node_type, n.status) {
            (NodeType::Goal, Some(Status::Supported)) => ("#e6f4ea", "#1e7e34"),
            (NodeType::Goal, Some(Status::Fragile)) => ("#fff4e5", "#b26a00"),
            (NodeType::Goal, Some(Status::Refuted)) => ("#fdecea", "#b00020"),
            (NodeType::Goal, _) => ("#f1f3f4", "#555"),
            (NodeType::CounterGoal | NodeType::CounterSolution, _) => ("#fdecea", "#b00020"),
            _ => ("#ffffff", "#333"),
        };
        let dash = if matches!(
            n.node_type,
            NodeType::CounterGoal | NodeType::CounterSolution
        ) {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        let shape = match n.node_type {
            NodeType::Goal | NodeType::CounterGoal | NodeType::Context => format!(
                "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{W:.0}\" height=\"{h:.0}\"{} fill=\"{fill}\" stroke=\"{stroke}\"{dash}/>",
                if n.node_type == NodeType::Context {
                    " rx=\"14\""
                } else {
                    ""
                }
            ),
            NodeType::Strategy => format!(
                "<polygon points=\"{:.0},{y:.0} {:.0},{y:.0} {:.0},{:.0} {x:.0},{:.0}\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
                x + 12.0,
                x + W,
                x + W - 12.0,
                y + h,
                y + h
            ),
            _ => format!(
                "<ellipse cx=\"{:.0}\" cy=\"{:.0}\" rx=\"{:.0}\" ry=\"{:.0}\" fill=\"{fill}\" stroke=\"{stroke}\"{dash}/>",
                x + W / 2.0,
                y + h / 2.0,
                W / 2.0,
                h / 2.0
            ),
        };
        svg.push_str(&format!("<g id=\"{}\">{shape}", esc(&n.id)));
        if n.undeveloped
            && n.supported_by.is_empty()
            && matches!(n.node_type, NodeType::Goal | NodeType::Strategy)
        {
            let (cx, b) = (x + W / 2.0, y + h);
            svg.push_str(&format!(
                "<polygon points=\"{cx:.0},{b:.0} {:.0},{:.0} {cx:.0},{:.0} {:.0},{:.0}\" fill=\"#fff\" stroke=\"#333\"/>",
                cx + 7.0,
                b + 7.0,
                b + 14.0,
                cx - 7.0,
                b + 7.0
            ));
        }
        let (ids, text) = label_parts(n);
        let indent = if is_round(n.node_type) { 24.0 } else { 8.0 };
        let mut ty = y + if is_round(n.node_type) { 12.0 } else { 4.0 };
        for (l, bold) in ids
            .iter()
            .map(|l| (l, true))
            .chain(text.iter().map(|l| (l, false)))
        {
            ty += LINE;
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{ty:.0}\"{}>{}</text>",
                x + indent,
                if bold { " font-weight=\"bold\"" } else { "" },
                esc(l)
            ));
        }
        if matches!(n.node_type, NodeType::Assumption | NodeType::Justification) {
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-weight=\"bold\">{}</text>",
                x + W - 6.0,
                y + h + 4.0,
                n.node_type.prefix()
            ));
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}
