//! `palisade report` end to end, and its page in headless Chromium (Debian's `chromium`, which
//! `scripts/test` installs): the page loads with no console message (no uncaught error, nothing
//! refused by its Content-Security-Policy), a click on a cell shows that cell's explanation, a
//! screenshot is produced, and a path full of markup cannot inject a script.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `web` (a Deployment of 2), `db` and `client` in `shop`; `db` admits `web` on 5432 only. Groups
/// in label order: 0 `shop/client`, 1 `shop/db`, 2 `shop/web-…`.
const SHOP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: m, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: m, image: i, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: m, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: nobody}}}, {podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
"#;

/// A folder whose name is markup: it reaches the page as the title, the explain command and the
/// lint findings' file (labels and names cannot hold markup: the loader rejects them).
const HOSTILE_DIR: &str =
    "a</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>";

fn palisade(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("run palisade")
}

/// Writes `SHOP` under the hostile folder in `dir` and its report; returns the report's path.
fn report(dir: &Path) -> PathBuf {
    let input = dir.join(HOSTILE_DIR);
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("shop.yaml"), SHOP).unwrap();
    let out = dir.join("report.html");
    let o = palisade(&[
        "report".as_ref(),
        "-f".as_ref(),
        input.as_os_str(),
        "--probe".as_ref(),
        "5432".as_ref(),
        "--probe".as_ref(),
        "80".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// A Chromium we started, killed (by its PID) if still running when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs headless Chromium on `page` (a `file://` URL with its fragment) with `extra` arguments;
/// returns its stdout and stderr (written to files: a DOM can be larger than a pipe holds).
fn chromium(dir: &Path, url: &str, extra: &[String]) -> (String, String) {
    let (out, err) = (dir.join("chromium.out"), dir.join("chromium.err"));
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,1600",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("chromium (Debian package `chromium`; scripts/test installs it)");
    let mut browser = Browser(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "chromium took longer than 90 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    );
    assert!(status.success(), "chromium: {status}\n{err}");
    (out, err)
}

/// Console messages Chromium logged for the page (`INFO:CONSOLE:1] "Uncaught …"`).
fn console(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

fn url(path: &Path, fragment: &str) -> String {
    format!("file://{}#{fragment}", path.display())
}

#[test]
fn the_page_loads_cleanly_and_a_click_on_a_cell_shows_its_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let page = report(dir.path());
    // Click web (row 2) → db (column 1): allowed on 5432, denied on 80.
    let (dom, stderr) = chromium(dir.path(), &url(&page, "click=2,1"), &["--dump-dom".into()]);
    assert!(console(&stderr).is_empty(), "{:#?}", console(&stderr));
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script did not finish:\n{dom}"
    );
    // The explanation box: the pair, the counts, the engine's explanation of a denied flow.
    let explain = &dom[dom.find("<aside id=\"explain\">").unwrap()..];
    let explain = &explain[..explain.find("</aside>").unwrap()];
    assert!(
        explain.contains("partial: 2 of 4 (pod pair, probe) allowed (50 %)"),
        "{explain}"
    );
    assert!(
        explain.contains("-&gt; pod shop/db (") && explain.contains("TCP 80: DENIED"),
        "{explain}"
    );
    assert!(
        explain.contains("NetworkPolicy shop/db-from-web"),
        "{explain}"
    );
    // The command to run again, the hostile folder quoted as one shell word.
    assert!(explain.contains("palisade explain -f '/"), "{explain}");
    assert!(
        explain.contains("document.title='\\''pwned'\\''"),
        "{explain}"
    );
    assert!(
        dom.contains("class=\"partial sel\" id=\"cell-2-1\""),
        "the clicked cell is not marked"
    );
    // The finding on db's policy is listed with the cell, linked to its table row, which links
    // back to db's row of the heatmap; #row= marks that row and column.
    assert!(
        explain.contains("Lint findings on these pods")
            && explain.contains("<a href=\"#finding-0\">warning selector-matches-nothing: NetworkPolicy shop/db-from-web</a>"),
        "{explain}"
    );
    assert!(dom.contains("<a href=\"#row=1\">shop/db</a>"), "{dom}");
    let (marked, _) = chromium(dir.path(), &url(&page, "row=1"), &["--dump-dom".into()]);
    for cell in ["cell-1-0", "cell-0-1", "cell-1-2"] {
        assert!(
            marked.contains(&format!("class=\"denied hl\" id=\"{cell}\""))
                || marked.contains(&format!("class=\"partial hl\" id=\"{cell}\""))
                || marked.contains(&format!("class=\"allowed hl\" id=\"{cell}\""))
                || marked.contains(&format!("class=\"empty hl\" id=\"{cell}\"")),
            "{cell} not marked"
        );
    }
    assert!(!marked.contains("hl\" id=\"cell-0-2\""));
    // The lint table is there, the hostile folder in it as text.
    assert!(dom.contains("selector-matches-nothing"));
    assert!(dom.contains("a&lt;/script&gt;&lt;script&gt;document.title='pwned'"));
    // Nothing was injected: the page's own two scripts, no image, the title unchanged.
    assert_eq!(dom.matches("<script").count(), 2, "{dom}");
    assert!(!dom.contains("<img"));
    assert!(dom.contains("<title>Palisade report: -f "));
    assert!(!dom.contains("<title>pwned"));
}

#[test]
fn a_screenshot_of_the_page_is_produced() {
    let dir = tempfile::tempdir().unwrap();
    let page = report(dir.path());
    let png = dir.path().join("report.png");
    let (_, stderr) = chromium(
        dir.path(),
        &url(&page, "cell=2,1"),
        &[format!("--screenshot={}", png.display())],
    );
    assert!(console(&stderr).is_empty(), "{:#?}", console(&stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "{} bytes: an empty page?",
        bytes.len()
    );
    // Kept for a person to look at: PALISADE_REPORT_SCREENSHOT=path.
    if let Some(keep) = std::env::var_os("PALISADE_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

#[test]
fn the_output_is_not_written_through_a_link_or_over_a_non_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shop.yaml");
    std::fs::write(&input, SHOP).unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link.html");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let folder = dir.path().join("folder.html");
    std::fs::create_dir(&folder).unwrap();
    for (out, why) in [
        (&link, "is a symbolic link"),
        (&folder, "not a regular file"),
    ] {
        let o = palisade(&[
            "report".as_ref(),
            "-f".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(why), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A regular file is replaced whole.
    let out = dir.path().join("r.html");
    std::fs::write(&out, "old").unwrap();
    let o = palisade(&[
        "report".as_ref(),
        "-f".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

/// `--disable` leaves a rule's findings out of the page, with lint's parser: an unknown rule is
/// unusable input listing the valid ones.
#[test]
fn disabled_rules_are_left_out_of_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shop.yaml");
    std::fs::write(&input, SHOP).unwrap();
    let out = dir.path().join("report.html");
    let run = |rule: &str| {
        palisade(&[
            "report".as_ref(),
            "-f".as_ref(),
            input.as_os_str(),
            "--disable".as_ref(),
            rule.as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
    };
    let o = run("selector-matches-nothing");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<p>No findings.</p>"), "{html}");
    let o = run("redundant-rule");
    assert!(o.status.success());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<code>selector-matches-nothing</code>"));
    let o = run("no-such-rule");
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("unknown lint rule \"no-such-rule\"; valid: service-port-not-target-port,"),
        "{stderr}"
    );
}
