//! The HTML report in a real browser: a run of the control agents over the
//! support example is rendered, opened from a file in headless Chromium and
//! driven over the DevTools protocol. The page must show the summary, charts
//! with error bars and the failing episodes; its filters and trace viewer must
//! work; a hostile tool output must stay text; and the page must request
//! nothing from the network.
//!
//! Needs Debian's `chromium` (or `ASSAY_CHROMIUM=/path`). Without it the test
//! fails under `CI` and is skipped with a note otherwise.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_agent::{Agent, agent_from_name};
use assay_report::{EpisodeResult, RunResults, Status, html, is_failing};
use assay_run::{RunConfig, run, write_results};
use assay_trace::{Event, EventKind, parse_jsonl};
use headless_chrome::protocol::cdp::types::Event as CdpEvent;
use headless_chrome::protocol::cdp::{Network, Page};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

/// Planted in a tool output: it must be shown, never run or loaded.
const HOSTILE: &str = "<script>window.__pwned = 1; alert(1)</script>\
<img src=\"x.png\" onerror=\"window.__pwned = 2\"></pre><b id=\"injected\">bold</b>";

const TECHNIQUES: [&str; 3] = [
    "plain-instruction",
    "base64-encoded",
    "important-instructions",
];

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel)
}

/// A real run of the three control agents over the refund example, written
/// to `out` as `assay run` writes it.
fn make_run(out: &Path) -> RunResults {
    let loaded = assay_spec::load_file(&example("support/refund-request.yaml")).unwrap();
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let opts = assay_synth::SynthOptions {
        techniques: Some(TECHNIQUES.iter().map(|t| t.to_string()).collect()),
        per_threat: None,
        seed: 0,
        ..Default::default()
    };
    let cases: Vec<_> = assay_synth::synthesize(&loaded, &catalog, &opts)
        .unwrap()
        .into_iter()
        .map(|c| (c.case, loaded.path.clone()))
        .collect();
    let cases = assay_run::prepare(cases).unwrap();
    let agents: Vec<Arc<dyn Agent>> = ["control:solve", "control:naive", "control:refuse"]
        .iter()
        .map(|n| agent_from_name(n).unwrap())
        .collect();
    let cfg = RunConfig {
        seed: 0,
        epochs: 1,
        jobs: 2,
        out: Some(out.to_path_buf()),
        judge: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut r = rt.block_on(run(&cases, &agents, &cfg, vec![])).unwrap();
    r.seal(None);
    write_results(out, &r).unwrap();
    r
}

fn read_trace(dir: &Path, e: &EpisodeResult) -> Option<Vec<Event>> {
    let text = std::fs::read_to_string(dir.join(&e.trace)).ok()?;
    parse_jsonl(&text).ok()
}

/// The browser to drive, or `None` (after a note) when it is missing outside CI.
fn chromium() -> Option<PathBuf> {
    // An explicit path is used alone, so a wrong one is noticed.
    let candidates: Vec<PathBuf> = match std::env::var_os("ASSAY_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .map(PathBuf::from)
            .into(),
    };
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Some(found);
    }
    if std::env::var_os("CI").is_some() {
        panic!("chromium not found (install Debian's `chromium` or set ASSAY_CHROMIUM)");
    }
    eprintln!("note: skipping the browser test: chromium not found (apt-get install chromium)");
    None
}

/// Value of a JavaScript expression, carried back as JSON text (objects and
/// arrays are otherwise returned by reference).
fn eval(tab: &Tab, js: &str) -> Value {
    let wrapped = format!("JSON.stringify(({js}) ?? null)");
    let text = tab
        .evaluate(&wrapped, false)
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .value
        .unwrap_or_else(|| panic!("no value from {js}"));
    serde_json::from_str(text.as_str().unwrap()).unwrap()
}

fn count(tab: &Tab, selector: &str) -> u64 {
    eval(
        tab,
        &format!("document.querySelectorAll({selector:?}).length"),
    )
    .as_u64()
    .unwrap()
}

#[test]
fn report_works_in_headless_chromium() {
    let Some(browser_path) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let r = make_run(&run_dir);

    // The episode that gets the hostile tool output: a naive episode whose
    // attack succeeded, citing events.
    let target = r
        .episodes
        .iter()
        .find(|e| {
            e.agent == "control:naive"
                && e.attack_success == Some(true)
                && !e.violations.is_empty()
                && e.technique.as_deref() == Some("plain-instruction")
        })
        .expect("the naive agent obeys the plain payload")
        .clone();
    let traces = |e: &EpisodeResult| {
        let mut events = read_trace(&run_dir, e)?;
        if e.episode == target.episode {
            let result = events
                .iter_mut()
                .find_map(|ev| match &mut ev.kind {
                    EventKind::ToolResult { output, .. } => Some(output),
                    _ => None,
                })
                .expect("the episode has a tool result");
            result.push_str(HOSTILE);
        }
        Some(events)
    };

    // A base run in which the target passed and one solve episode errored:
    // the target is newly failing, the solve episode newly passing.
    let mut base = r.clone();
    let b = base
        .episodes
        .iter_mut()
        .find(|e| e.episode == target.episode)
        .unwrap();
    b.violations.clear();
    b.attack_success = Some(false);
    b.attack_events.clear();
    let fixed = base
        .episodes
        .iter_mut()
        .find(|e| e.agent == "control:solve" && !is_failing(e))
        .unwrap();
    fixed.status = Status::Error;
    fixed.error = Some("endpoint </script> unreachable".into());
    let fixed_case = fixed.case.clone();

    let page = html(&r, &traces, Some(&base));
    assert_eq!(page, html(&r, &traces, Some(&base)), "not deterministic");
    assert!(
        !page.contains("<script>window.__pwned"),
        "hostile text unescaped"
    );
    let file = dir.path().join("report.html");
    std::fs::write(&file, &page).unwrap();

    let failing: Vec<&EpisodeResult> = r.episodes.iter().filter(|e| is_failing(e)).collect();
    assert!(!failing.is_empty(), "control:naive produces failures");

    // ---- launch -----------------------------------------------------------
    let profile = tempfile::tempdir().unwrap();
    let args: Vec<&OsStr> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let browser = Browser::new(LaunchOptions {
        headless: true,
        sandbox: false,
        path: Some(browser_path),
        user_data_dir: Some(profile.path().to_path_buf()),
        window_size: Some((1400, 1100)),
        args,
        idle_browser_timeout: Duration::from_secs(300),
        ..LaunchOptions::default()
    })
    .expect("chromium starts");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(60));

    // Every request the page makes, and any dialog it opens.
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let dialogs = Arc::new(Mutex::new(0usize));
    {
        let requests = requests.clone();
        let dialogs = dialogs.clone();
        tab.add_event_listener(Arc::new(move |ev: &CdpEvent| match ev {
            CdpEvent::NetworkRequestWillBeSent(e) => {
                requests.lock().unwrap().push(e.params.request.url.clone())
            }
            CdpEvent::PageJavascriptDialogOpening(_) => *dialogs.lock().unwrap() += 1,
            _ => {}
        }))
        .unwrap();
    }
    tab.call_method(Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .unwrap();
    tab.call_method(Page::Enable {
        enable_file_chooser_opened_event: None,
    })
    .unwrap();

    let url = format!("file://{}", file.display());
    tab.navigate_to(&url).unwrap();
    tab.wait_until_navigated().unwrap();
    tab.wait_for_element("#episodes li").unwrap();

    // ---- summary ----------------------------------------------------------
    assert_eq!(count(&tab, "#summary tbody tr") as usize, r.summary.len());
    assert!(r.summary.len() >= 3);
    let naive_row = eval(
        &tab,
        "[...document.querySelectorAll('#summary tbody tr')].find(r => r.dataset.agent === 'control:naive').textContent",
    );
    assert!(
        naive_row.as_str().unwrap().contains("100.0%"),
        "naive attack success shown: {naive_row}"
    );
    assert!(count(&tab, "#tokens") == 1);

    // ---- charts with error bars ------------------------------------------
    let tech_rows = r
        .breakdowns
        .by_technique
        .iter()
        .filter(|b| b.attacked > 0)
        .count() as u64;
    assert!(tech_rows >= TECHNIQUES.len() as u64);
    let sel = "#charts .chart[data-chart=technique] g.row";
    assert_eq!(count(&tab, sel), tech_rows);
    assert_eq!(count(&tab, &format!("{sel} g.ci line")), 3 * tech_rows);
    for id in ["axis", "slot_kind", "category"] {
        assert!(
            count(&tab, &format!("#charts .chart[data-chart={id}] g.ci")) > 0,
            "{id} chart has error bars"
        );
    }
    // The naive agent's bar is full and its interval is a real interval.
    let ci = eval(
        &tab,
        "(() => { const g = [...document.querySelectorAll('.chart[data-chart=technique] g.row')].find(g => g.dataset.agent === 'control:naive'); \
         const c = g.querySelector('g.ci'); return [Number(c.dataset.lo), Number(c.dataset.hi), Number(g.querySelector('rect.bar').getAttribute('width'))]; })()",
    );
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo > 0.0 && lo < 1.0 && (hi - 1.0).abs() < 1e-9, "{ci}");
    assert!(ci[2].as_f64().unwrap() > 200.0, "full bar: {ci}");

    // ---- failing episode list and a filter ----------------------------------
    let listed = count(&tab, "#episodes li");
    assert_eq!(listed as usize, failing.len());
    let base64 = failing
        .iter()
        .filter(|e| e.technique.as_deref() == Some("base64-encoded"))
        .count() as u64;
    assert!(base64 > 0);
    tab.find_element("#filters input[data-group=technique][data-value=base64-encoded]")
        .unwrap()
        .click()
        .unwrap();
    assert_eq!(count(&tab, "#episodes li"), listed - base64);
    let base64_rows = r
        .breakdowns
        .by_technique
        .iter()
        .filter(|b| b.attacked > 0 && b.key == "base64-encoded")
        .count() as u64;
    assert!(base64_rows > 0);
    assert_eq!(
        count(&tab, sel),
        tech_rows - base64_rows,
        "the chart follows the filter"
    );
    let ids: Vec<String> = serde_json::from_value(eval(
        &tab,
        "[...document.querySelectorAll('#episodes li')].map(li => li.dataset.episode)",
    ))
    .unwrap();
    assert!(ids.iter().all(|id| {
        let e = r.episodes.iter().find(|e| &e.episode == id).unwrap();
        e.technique.as_deref() != Some("base64-encoded")
    }));
    tab.find_element("#filters input[data-group=agent][data-value='control:naive']")
        .unwrap()
        .click()
        .unwrap();
    let non_naive = failing
        .iter()
        .filter(|e| e.agent != "control:naive" && e.technique.as_deref() != Some("base64-encoded"))
        .count() as u64;
    assert_eq!(count(&tab, "#episodes li"), non_naive);
    assert_eq!(
        count(&tab, "#summary tbody tr:not([hidden])") as usize,
        r.summary.len() - 1
    );
    // Filters back on.
    for s in [
        "#filters input[data-group=agent][data-value='control:naive']",
        "#filters input[data-group=technique][data-value=base64-encoded]",
    ] {
        tab.find_element(s).unwrap().click().unwrap();
    }
    assert_eq!(count(&tab, "#episodes li"), listed);

    // ---- trace viewer with cited events -------------------------------------
    let shot = tab
        .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    tab.find_element(&format!("#episodes li[data-episode='{}']", target.episode))
        .unwrap()
        .click()
        .unwrap();
    assert_eq!(
        eval(&tab, "document.getElementById('viewer').dataset.episode"),
        Value::String(target.episode.clone())
    );
    let cited: BTreeSet<u64> = target
        .violations
        .iter()
        .flat_map(|v| v.events.iter().copied())
        .chain(target.attack_events.iter().copied())
        .collect();
    let shown: BTreeSet<u64> = serde_json::from_value(eval(
        &tab,
        "[...document.querySelectorAll('#viewer .ev.cited')].map(e => Number(e.dataset.seq))",
    ))
    .unwrap();
    assert_eq!(
        shown, cited,
        "highlighted events are exactly the cited ones"
    );
    assert_eq!(count(&tab, "#viewer .ev") as usize, target.events);
    // The first cited event is focused and scrolled into the viewer's view.
    let in_view = eval(
        &tab,
        "(() => { const e = document.querySelector('#viewer .ev.focus'); const v = document.getElementById('viewer').getBoundingClientRect(); \
         const r = e.getBoundingClientRect(); return [Number(e.dataset.seq), r.top >= v.top - 1 && r.bottom <= v.bottom + 1]; })()",
    );
    assert_eq!(in_view[0].as_u64(), cited.first().copied());
    assert_eq!(
        in_view[1],
        Value::Bool(true),
        "cited event scrolled into view"
    );

    // ---- hostile output stayed text ---------------------------------------
    assert_eq!(eval(&tab, "typeof window.__pwned"), "undefined");
    assert_eq!(count(&tab, "#viewer script, #viewer img, #injected"), 0);
    let viewer_text = eval(&tab, "document.getElementById('viewer').textContent");
    assert!(
        viewer_text.as_str().unwrap().contains(HOSTILE),
        "hostile text shown verbatim"
    );
    assert_eq!(*dialogs.lock().unwrap(), 0, "no alert opened");
    let shot_trace = tab
        .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();

    // ---- diff against the base ---------------------------------------------
    assert_eq!(
        eval(&tab, "document.getElementById('diff-section').hidden"),
        false
    );
    assert_eq!(count(&tab, "#diff ul[data-list=regressions] li"), 1);
    let newly_passing = eval(
        &tab,
        "document.querySelector('#diff ul[data-list=improvements]').textContent",
    );
    assert!(
        newly_passing.as_str().unwrap().contains(&fixed_case),
        "{newly_passing}"
    );
    eval(
        &tab,
        "document.getElementById('viewer').removeAttribute('data-episode')",
    );
    tab.find_element("#diff ul[data-list=regressions] li.link")
        .unwrap()
        .click()
        .unwrap();
    assert_eq!(
        eval(&tab, "document.getElementById('viewer').dataset.episode"),
        Value::String(target.episode.clone())
    );

    // ---- screenshots --------------------------------------------------------
    for png in [&shot, &shot_trace] {
        assert!(png.len() > 20_000, "screenshot is {} bytes", png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(keep.join("html-report.png"), &shot).unwrap();
    std::fs::write(keep.join("html-report-trace.png"), &shot_trace).unwrap();

    // ---- nothing but the file itself was requested --------------------------
    assert_eq!(
        eval(&tab, "performance.getEntriesByType('resource').length"),
        0
    );
    assert_eq!(count(&tab, "[src], [href], link, iframe, object, embed"), 0);
    let requests = requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|u| u.starts_with("file://")),
        "the request log works: {requests:?}"
    );
    let remote: Vec<&String> = requests
        .iter()
        .filter(|u| !(u.starts_with("file://") && u.ends_with("report.html")))
        .collect();
    assert!(remote.is_empty(), "unexpected requests: {remote:?}");
}
