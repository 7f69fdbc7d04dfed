//! The web UI: the HTML page served at `<prefix>/` and `<prefix>/status`, and the files under
//! `<prefix>/static/`, all embedded in the binary.
//!
//! The page is a shell that `app.js` fills in the browser from API v1 (`api/v1/metrics`,
//! `api/v1/status`); deleting uses the push API's `DELETE` and the admin API's wipe. Nothing is
//! fetched from elsewhere and nothing is inline, so the UI works offline and under
//! `Content-Security-Policy: default-src 'self'`. Every URL in the page and the script starts
//! with the base the server substitutes, so the UI works behind a route prefix or a proxy.

/// The page, with `{{base}}` and `{{cache_buster}}` placeholders.
const TEMPLATE: &str = include_str!("assets/index.html");

/// The files below `static/`. The template is not among them: it is only reachable rendered.
const FILES: &[(&str, &[u8])] = &[
    ("app.css", include_bytes!("assets/app.css")),
    ("app.js", include_bytes!("assets/app.js")),
    ("favicon.svg", include_bytes!("assets/favicon.svg")),
];

/// An embedded file and the `Content-Type` to serve it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The HTML page for `<prefix>/` and `<prefix>/status`.
///
/// `base` is where the page finds its files and the API: `.` (relative to the page) or a path
/// such as `/pg`. `cache_buster` is appended to the files' URLs so that browsers fetch new files
/// after an upgrade. Both are HTML-escaped.
pub fn page(base: &str, cache_buster: &str) -> String {
    let mut html = String::with_capacity(TEMPLATE.len() + 1024);
    let mut rest = TEMPLATE;
    // One pass, so that a substituted value that looks like a placeholder stays as it is.
    while let Some(start) = rest.find("{{") {
        html.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        match &after[..end] {
            "base" => push_escaped(&mut html, base),
            "cache_buster" => push_escaped(&mut html, cache_buster),
            _ => html.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    html.push_str(rest);
    html
}

/// An embedded file under `<prefix>/static/`, by its path below `static/` (e.g. `app.js`);
/// `None` when absent.
pub fn asset(path: &str) -> Option<Asset> {
    let (_, body) = FILES.iter().find(|(name, _)| *name == path)?;
    Some(Asset {
        content_type: content_type(path)?,
        body,
    })
}

fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "js" => "application/javascript",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        _ => return None,
    })
}

fn push_escaped(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            _ => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file names after every `/static/` in the page, without their query.
    fn referenced_assets(html: &str) -> Vec<&str> {
        html.split("/static/")
            .skip(1)
            .map(|rest| rest.split(['?', '"']).next().unwrap())
            .collect()
    }

    #[test]
    fn page_links_assets_below_the_base_with_the_cache_buster() {
        let html = page("/pg", "1.2.3-abc");
        assert!(html.contains(r#"<meta name="pushgateway-base" content="/pg">"#));
        assert!(html.contains(r#"src="/pg/static/app.js?v=1.2.3-abc""#));
        assert!(html.contains(r#"href="/pg/static/app.css?v=1.2.3-abc""#));
        assert!(html.contains(r#"rel="icon" type="image/svg+xml" href="/pg/static/favicon.svg"#));
        assert!(!html.contains("{{"));

        let relative = page(".", "v");
        assert!(relative.contains(r#"src="./static/app.js?v=v""#));
        assert!(relative.contains(r#"content=".""#));
    }

    #[test]
    fn page_escapes_what_it_substitutes() {
        let html = page(r#"/a"><script>x</script>&'"#, "<b>{{base}}");
        assert!(!html.contains("<script>x"));
        assert!(!html.contains("<b>"));
        assert!(
            html.contains("/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;&#39;/static/app.js")
        );
        assert!(html.contains("?v=&lt;b&gt;{{base}}\""));
    }

    #[test]
    fn every_asset_the_page_references_is_embedded() {
        let html = page(".", "v");
        let names = referenced_assets(&html);
        for name in ["app.js", "app.css", "favicon.svg"] {
            assert!(names.contains(&name), "{name} not referenced in {names:?}");
        }
        for name in names {
            let asset = asset(name).unwrap_or_else(|| panic!("{name} is referenced, not embedded"));
            assert!(!asset.body.is_empty());
        }
    }

    #[test]
    fn assets_have_their_content_types() {
        assert_eq!(
            asset("app.js").unwrap().content_type,
            "application/javascript"
        );
        assert_eq!(
            asset("app.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert_eq!(asset("favicon.svg").unwrap().content_type, "image/svg+xml");
        assert_eq!(content_type("x.ico"), Some("image/x-icon"));
        assert_eq!(content_type("x.png"), Some("image/png"));
    }

    #[test]
    fn only_embedded_files_are_assets() {
        for path in [
            "../mod.rs",
            "mod.rs",
            "../ui/assets/app.js",
            "/app.js",
            "app.js/",
            "./app.js",
            "APP.JS",
            "index.html",
            "",
            "missing.js",
        ] {
            assert_eq!(asset(path), None, "{path}");
        }
    }

    /// What `default-src 'self'` would block: inline scripts, styles and event handlers, and
    /// anything loaded from another origin.
    #[test]
    fn page_works_under_a_strict_content_security_policy() {
        let html = page(".", "v").to_ascii_lowercase();
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="./static/app.js?v=v" defer></script>"#));
        assert!(!html.contains("<style"));
        assert!(!html.contains(" style="));
        assert!(!html.contains("javascript:"));
        let attributes = html.split_whitespace().filter(|word| {
            word.starts_with("on") && word.split_once('=').is_some_and(|(name, _)| name.len() > 2)
        });
        assert_eq!(attributes.count(), 0, "inline event handler in the page");
        for name in ["app.js", "app.css"] {
            let body = std::str::from_utf8(asset(name).unwrap().body).unwrap();
            assert!(!body.contains("://"), "{name} loads from another origin");
        }
    }

    /// Label values, metric names and help texts are attacker-controlled: the script inserts
    /// them as text only.
    #[test]
    fn script_never_parses_markup() {
        let script = std::str::from_utf8(asset("app.js").unwrap().body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }
}
