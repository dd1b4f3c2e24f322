//! The page as HTML: static parts (summary, notes, lint table) written here with every manifest
//! string escaped for HTML; the heatmap, graph and explanations drawn by the page's own script from
//! one JSON document embedded in a `<script type="application/json">`, escaped so that no string
//! can close it. The script sets text with `textContent` only, never as markup.

use super::Page;
use std::fmt::Write as _;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// `text` safe as HTML text and as a quoted attribute value.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as JSON safe inside a `<script>` element: `<`, `>` and `&` (which JSON holds only in
/// strings) as `\u` escapes, so that neither `</script>` nor `<!--` can appear; U+2028 and U+2029
/// too, for older parsers.
pub fn script_json(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn to_html(page: &Page) -> String {
    let mut out = String::new();
    let title = escape_html(&page.source);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <title>Palisade report: {title}</title><style>{CSS}</style></head><body>\
         <header><h1>Palisade report</h1><p class=\"sub\">{title}</p></header>\n"
    );
    summary(page, &mut out);
    out.push_str(
        "<section id=\"matrix\"><h2>Connectivity</h2>\
         <p class=\"help\">Rows are sources, columns destinations. A cell is green when every pod pair \
         of the two groups may connect on every probe, red when none may, amber when some may. \
         Click a cell for why.</p>\
         <div class=\"legend\"><span class=\"c allowed\"></span>allowed <span class=\"c partial\"></span>partially allowed \
         <span class=\"c denied\"></span>denied</div>\
         <div class=\"split\"><div id=\"heatmap\" class=\"scroll\"></div>\
         <aside id=\"explain\"><h3>Explanation</h3><p class=\"help\">Click a cell.</p></aside></div></section>\n\
         <section id=\"graph\"><h2>Graph</h2><p class=\"help\" id=\"graphhelp\"></p>\
         <div id=\"graphbox\"></div></section>\n",
    );
    findings(page, &mut out);
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"data\">{}</script>\n<script>{JS}</script></body></html>\n",
        script_json(page)
    );
    out
}

fn summary(page: &Page, out: &mut String) {
    let level = match page.level {
        super::Level::Workload => "workload",
        super::Level::Namespace => "namespace",
    };
    let _ = write!(
        out,
        "<section id=\"summary\"><ul class=\"facts\"><li><b>{}</b> pods</li><li><b>{}</b> endpoint classes</li>\
         <li><b>{}</b> groups (by {level})</li><li>probes: <b>{}</b></li>\
         <li class=\"err\"><b>{}</b> lint errors</li><li class=\"warn\"><b>{}</b> warnings</li><li><b>{}</b> info</li></ul>",
        page.pods,
        page.classes,
        page.groups.len(),
        escape_html(&page.probes.join(", ")),
        page.counts.error,
        page.counts.warning,
        page.counts.info,
    );
    if !page.notes.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for note in &page.notes {
            let _ = write!(out, "<li>{}</li>", escape_html(note));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");
}

fn findings(page: &Page, out: &mut String) {
    out.push_str("<section id=\"lint\"><h2>Lint findings</h2>");
    if page.findings.is_empty() {
        out.push_str("<p>No findings.</p></section>\n");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table class=\"findings\"><thead><tr><th>severity</th><th>rule</th><th>object</th>\
         <th>where</th><th>field</th><th>what is wrong</th><th>fix</th><th>pods in</th></tr></thead><tbody>",
    );
    for (k, f) in page.findings.iter().enumerate() {
        let sev = f.severity().as_str();
        let origin = f
            .origin
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr id=\"finding-{k}\" class=\"{sev}\"><td>{sev}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.rule.id(),
            escape_html(&f.object.to_string()),
            escape_html(&origin),
            escape_html(f.field.as_deref().unwrap_or("")),
            escape_html(&f.message),
            escape_html(&f.fix),
            group_links(page, page.finding_groups.get(k).map_or(&[], Vec::as_slice)),
        );
    }
    out.push_str("</tbody></table></div>");
    if page.findings_omitted > 0 {
        let _ = write!(
            out,
            "<p class=\"help\">and {} more: run <code>palisade lint</code> for all of them.</p>",
            page.findings_omitted
        );
    }
    out.push_str("</section>\n");
}

/// Links to the heatmap rows of `groups` (`#row=G` marks its row and column), the first
/// [`MAX_LINKS`], then how many more.
fn group_links(page: &Page, groups: &[usize]) -> String {
    let mut out = String::new();
    for &g in groups.iter().take(MAX_LINKS) {
        let label = page.groups.get(g).map_or("", |g| g.label.as_str());
        let _ = write!(out, "<a href=\"#row={g}\">{}</a> ", escape_html(label));
    }
    if groups.len() > MAX_LINKS {
        let _ = write!(out, "and {} more", groups.len() - MAX_LINKS);
    }
    out
}

/// Group links per finding.
const MAX_LINKS: usize = 5;
