//! Routing as upstream routes: Go's `ServeMux` in front (unclean paths are redirected, for every
//! method), then httprouter's rules (405 with an `Allow` list, automatic `OPTIONS`, redirects
//! for a missing or extra trailing slash and for wrong letter case, `HEAD` not mapped to `GET`).
//! Clients see these status codes and headers, so they are reproduced rather than left to a
//! generic router.

use http::Method;

/// What a matched route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// PUT or POST of metrics; `job_base64` for the `job@base64` form.
    Push {
        job_base64: bool,
    },
    Delete {
        job_base64: bool,
    },
    Scrape,
    Healthy,
    Ready,
    Quit,
    /// `GET <prefix>/-/quit`, answered with upstream's own 405 text. (Upstream registers this
    /// route without the prefix, a bug not copied.)
    QuitWrongMethod,
    /// The web UI's page, at `<prefix>/` and `<prefix>/status`.
    Page,
    /// A file of the web UI under `<prefix>/static/`.
    Static,
    ApiStatus,
    ApiMetrics,
    /// `OPTIONS` on any path under the API.
    ApiOptions,
    /// `PUT <prefix>/api/v1/admin/wipe`, routed only with the admin API enabled.
    Wipe,
    /// `DELETE <prefix>/api/v1/groups?match=<selector>`, routed only with the admin API
    /// enabled (ours).
    DeleteGroups,
}

/// Values taken from the path by `:job` and `*rest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub job: String,
    /// What the catch-all took: everything after the job segment of a push path (the label
    /// part), or the file path below `static`, leading `/` included (empty when there is
    /// nothing).
    pub rest: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Routing {
    Matched(Endpoint, Params),
    /// Go's `ServeMux` answers 301, whatever the method, for an unclean path (`//`, `.`, `..`),
    /// sending the cleaned one, and for the API's root without its trailing slash.
    MuxRedirect(String),
    /// A trailing slash or letter case to fix: 301 for GET, 307 for other methods.
    Redirect(String),
    /// `OPTIONS` on a path that exists: 200 with this `Allow` value.
    Options(String),
    /// 405 with this `Allow` value.
    MethodNotAllowed(String),
    NotFound,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Static(String),
    /// `:name`, one non-empty path segment.
    Param,
    /// `*name`, the rest of the path from the `/` before it.
    CatchAll,
}

#[derive(Clone, Debug)]
struct Route {
    method: Method,
    segments: Vec<Segment>,
    endpoint: Endpoint,
}

/// Upstream's two routers: the main one, and the API's, which sits behind `ServeMux` at
/// `<prefix>/api/v1/` and sees paths with that part stripped.
pub struct Router {
    main: Table,
    api: Table,
    /// `<prefix>/api/v1`.
    api_root: String,
}

impl Router {
    /// The routes for a route prefix (`""` or `/x`), the joined telemetry path, and whether the
    /// admin API is enabled.
    pub fn new(prefix: &str, telemetry_path: &str, admin_api: bool) -> Router {
        let mut main = Table::default();
        let push = [Method::PUT, Method::POST];
        for (job, job_base64) in [("job", false), ("job@base64", true)] {
            for suffix in ["", "/*labels"] {
                let path = format!("{prefix}/metrics/{job}/:job{suffix}");
                main.add(&push, &path, Endpoint::Push { job_base64 });
                main.add(&[Method::DELETE], &path, Endpoint::Delete { job_base64 });
            }
        }
        main.bare_job_path = Some(format!("{prefix}/metrics/job/"));
        main.add(&[Method::GET], telemetry_path, Endpoint::Scrape);
        main.add(
            &[Method::GET],
            &format!("{prefix}/-/healthy"),
            Endpoint::Healthy,
        );
        main.add(
            &[Method::GET],
            &format!("{prefix}/-/ready"),
            Endpoint::Ready,
        );
        main.add(&push, &format!("{prefix}/-/quit"), Endpoint::Quit);
        main.add(
            &[Method::GET],
            &format!("{prefix}/-/quit"),
            Endpoint::QuitWrongMethod,
        );
        main.add(
            &[Method::GET],
            &format!("{prefix}/static/*filepath"),
            Endpoint::Static,
        );
        main.add(&[Method::GET], &format!("{prefix}/status"), Endpoint::Page);
        main.add(&[Method::GET], &format!("{prefix}/"), Endpoint::Page);

        let mut api = Table::default();
        api.add(&[Method::OPTIONS], "/*path", Endpoint::ApiOptions);
        api.add(&[Method::GET], "/status", Endpoint::ApiStatus);
        api.add(&[Method::GET], "/metrics", Endpoint::ApiMetrics);
        if admin_api {
            api.add(&[Method::PUT], "/admin/wipe", Endpoint::Wipe);
            api.add(&[Method::DELETE], "/groups", Endpoint::DeleteGroups);
        }
        Router {
            main,
            api,
            api_root: format!("{prefix}/api/v1"),
        }
    }

    /// Routes a request by method and percent-decoded path.
    pub fn route(&self, method: &Method, path: &str) -> Routing {
        if let Some(clean) = clean_path(path) {
            return Routing::MuxRedirect(clean);
        }
        if path == self.api_root {
            return Routing::MuxRedirect(format!("{path}/"));
        }
        match path
            .strip_prefix(&self.api_root)
            .filter(|rest| rest.starts_with('/'))
        {
            // Upstream's API router redirects to the stripped path (a `Location` without the
            // prefix, which leads nowhere); the full path is sent here.
            Some(rest) => match self.api.route(method, rest) {
                Routing::Redirect(target) => {
                    Routing::Redirect(format!("{}{target}", self.api_root))
                }
                routing => routing,
            },
            None => self.main.route(method, path),
        }
    }
}

/// One httprouter: routes by method, with its redirects and automatic answers.
#[derive(Default)]
struct Table {
    routes: Vec<Route>,
    /// `<prefix>/metrics/job/`, which httprouter's tree redirects to `<prefix>/metrics/job`.
    bare_job_path: Option<String>,
}

impl Table {
    fn add(&mut self, methods: &[Method], path: &str, endpoint: Endpoint) {
        for method in methods {
            self.routes.push(Route {
                method: method.clone(),
                segments: parse_pattern(path),
                endpoint,
            });
        }
    }

    fn route(&self, method: &Method, path: &str) -> Routing {
        if let Some((endpoint, params)) = self.find(method, path) {
            return Routing::Matched(endpoint, params);
        }
        let has_method = self.routes.iter().any(|r| r.method == method);
        if has_method && path != "/" {
            if let Some(target) = self.trailing_slash_redirect(method, path) {
                return Routing::Redirect(target);
            }
            if let Some(target) = self.case_insensitive_match(method, path) {
                return Routing::Redirect(target);
            }
        }
        let allowed = self.allowed(method, path);
        match allowed {
            None => Routing::NotFound,
            Some(allow) if method == Method::OPTIONS => Routing::Options(allow),
            Some(allow) => Routing::MethodNotAllowed(allow),
        }
    }

    fn find(&self, method: &Method, path: &str) -> Option<(Endpoint, Params)> {
        self.routes
            .iter()
            .filter(|r| r.method == method)
            .find_map(|r| match_segments(&r.segments, path, false).map(|(p, _)| (r.endpoint, p)))
    }

    fn trailing_slash_redirect(&self, method: &Method, path: &str) -> Option<String> {
        let toggled = match path.strip_suffix('/') {
            Some(without) => without.to_string(),
            None => format!("{path}/"),
        };
        if self.find(method, &toggled).is_some() {
            return Some(toggled);
        }
        // In httprouter's tree, `/metrics/job/` ends at a node whose only child is the `:job`
        // parameter, which it answers with a trailing-slash redirect to a path that does not
        // exist. Clients have seen that 307 for years, so it stays.
        let push_method = [Method::PUT, Method::POST, Method::DELETE].contains(method);
        (push_method && self.bare_job_path.as_deref() == Some(path)).then_some(toggled)
    }

    fn case_insensitive_match(&self, method: &Method, path: &str) -> Option<String> {
        let toggled = match path.strip_suffix('/') {
            Some(without) => without.to_string(),
            None => format!("{path}/"),
        };
        [path, toggled.as_str()].iter().find_map(|candidate| {
            self.routes
                .iter()
                .filter(|r| r.method == method)
                .find_map(|r| match_segments(&r.segments, candidate, true).map(|(_, fixed)| fixed))
        })
    }

    /// The `Allow` value for a path: the methods with a route matching it exactly, plus
    /// `OPTIONS`, sorted. `None` when no method has such a route.
    fn allowed(&self, method: &Method, path: &str) -> Option<String> {
        let mut methods: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.method != method && r.method != Method::OPTIONS)
            .filter(|r| match_segments(&r.segments, path, false).is_some())
            .map(|r| r.method.as_str())
            .collect();
        if methods.is_empty() {
            return None;
        }
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.dedup();
        Some(methods.join(", "))
    }
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .split('/')
        .skip(1)
        .map(|s| {
            if s.starts_with(':') {
                Segment::Param
            } else if s.starts_with('*') {
                Segment::CatchAll
            } else {
                Segment::Static(s.to_string())
            }
        })
        .collect()
}

/// Matches a path against a pattern. Returns the parameters and the path with the pattern's
/// spelling of the static parts (which differs from `path` only when matching ignores case).
fn match_segments(pattern: &[Segment], path: &str, ignore_case: bool) -> Option<(Params, String)> {
    let mut params = Params::default();
    let mut fixed = String::with_capacity(path.len());
    let mut rest = path;
    for segment in pattern {
        match segment {
            Segment::CatchAll => {
                // The catch-all takes the rest, starting with the `/` it needs at least.
                if !rest.starts_with('/') {
                    return None;
                }
                params.rest = rest.to_string();
                fixed.push_str(rest);
                return Some((params, fixed));
            }
            Segment::Static(expected) => {
                let (part, remaining) = next_segment(rest)?;
                let same = if ignore_case {
                    part.eq_ignore_ascii_case(expected)
                } else {
                    part == expected
                };
                if !same {
                    return None;
                }
                fixed.push('/');
                fixed.push_str(expected);
                rest = remaining;
            }
            Segment::Param => {
                let (part, remaining) = next_segment(rest)?;
                if part.is_empty() {
                    return None;
                }
                params.job = part.to_string();
                fixed.push('/');
                fixed.push_str(part);
                rest = remaining;
            }
        }
    }
    rest.is_empty().then_some((params, fixed))
}

/// Splits `/part/rest...` into `part` and `/rest...`.
fn next_segment(path: &str) -> Option<(&str, &str)> {
    let after_slash = path.strip_prefix('/')?;
    let end = after_slash.find('/').unwrap_or(after_slash.len());
    Some(after_slash.split_at(end))
}

/// The redirect target Go's `ServeMux` sends for a path with `//`, `.` or `..` segments: the
/// cleaned path, keeping a trailing slash. `None` when the path is clean.
fn clean_path(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            part => segments.push(part),
        }
    }
    let mut clean = format!("/{}", segments.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new("", "/metrics", false)
    }

    fn push(job: &str, labels: &str) -> Routing {
        Routing::Matched(
            Endpoint::Push { job_base64: false },
            Params {
                job: job.into(),
                rest: labels.into(),
            },
        )
    }

    #[test]
    fn push_routes_and_parameters() {
        let r = router();
        assert_eq!(r.route(&Method::PUT, "/metrics/job/foo"), push("foo", ""));
        assert_eq!(
            r.route(&Method::POST, "/metrics/job/foo/a/b"),
            push("foo", "/a/b")
        );
        assert_eq!(r.route(&Method::PUT, "/metrics/job/foo/"), push("foo", "/"));
        assert_eq!(
            r.route(&Method::PUT, "/metrics/job/trail/a/"),
            push("trail", "/a/")
        );
        assert_eq!(
            r.route(&Method::DELETE, "/metrics/job@base64/Zm9v"),
            Routing::Matched(
                Endpoint::Delete { job_base64: true },
                Params {
                    job: "Zm9v".into(),
                    rest: "".into()
                }
            )
        );
        assert_eq!(
            r.route(&Method::GET, "/metrics"),
            Routing::Matched(Endpoint::Scrape, Params::default())
        );
    }

    #[test]
    fn upstream_status_codes_for_odd_paths() {
        let r = router();
        let allow_push = Routing::MethodNotAllowed("DELETE, OPTIONS, POST, PUT".into());
        assert_eq!(r.route(&Method::GET, "/metrics/job/foo"), allow_push);
        assert_eq!(r.route(&Method::PATCH, "/metrics/job/foo"), allow_push);
        assert_eq!(
            r.route(&Method::OPTIONS, "/metrics/job/foo"),
            Routing::Options("DELETE, OPTIONS, POST, PUT".into())
        );
        assert_eq!(
            r.route(&Method::HEAD, "/metrics"),
            Routing::MethodNotAllowed("GET, OPTIONS".into())
        );
        assert_eq!(
            r.route(&Method::DELETE, "/metrics"),
            Routing::MethodNotAllowed("GET, OPTIONS".into())
        );
        assert_eq!(
            r.route(&Method::POST, "/-/healthy"),
            Routing::MethodNotAllowed("GET, OPTIONS".into())
        );
        assert_eq!(
            r.route(&Method::PUT, "/metrics/job/"),
            Routing::Redirect("/metrics/job".into())
        );
        assert_eq!(r.route(&Method::PUT, "/metrics/job"), Routing::NotFound);
        assert_eq!(r.route(&Method::PUT, "/metrics/"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::PUT, "/metrics/job@base64/"),
            Routing::NotFound
        );
        assert_eq!(
            r.route(&Method::GET, "/-/healthy/"),
            Routing::Redirect("/-/healthy".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/METRICS"),
            Routing::Redirect("/metrics".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/-/Healthy"),
            Routing::Redirect("/-/healthy".into())
        );
        assert_eq!(
            r.route(&Method::PUT, "/METRICS/JOB/x"),
            Routing::Redirect("/metrics/job/x".into())
        );
        assert_eq!(r.route(&Method::GET, "/nothing"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/-/quit"),
            Routing::Matched(Endpoint::QuitWrongMethod, Params::default())
        );
    }

    #[test]
    fn unclean_paths_redirect_for_every_method() {
        let r = router();
        assert_eq!(
            r.route(&Method::PUT, "/metrics/job/foo/a//b/c"),
            Routing::MuxRedirect("/metrics/job/foo/a/b/c".into())
        );
        assert_eq!(
            r.route(&Method::PUT, "/metrics/job/foo/../b/c"),
            Routing::MuxRedirect("/metrics/job/b/c".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/./metrics"),
            Routing::MuxRedirect("/metrics".into())
        );
        assert_eq!(
            r.route(&Method::GET, "//"),
            Routing::MuxRedirect("/".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/metrics/job/foo/bar/.."),
            Routing::MuxRedirect("/metrics/job/foo".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/metrics/job/foo/./"),
            Routing::MuxRedirect("/metrics/job/foo/".into())
        );
    }

    #[test]
    fn api_router_behind_the_mux() {
        let r = Router::new("", "/metrics", true);
        let matched = |e| Routing::Matched(e, Params::default());
        assert_eq!(
            r.route(&Method::GET, "/api/v1/status"),
            matched(Endpoint::ApiStatus)
        );
        assert_eq!(
            r.route(&Method::GET, "/api/v1/metrics"),
            matched(Endpoint::ApiMetrics)
        );
        assert_eq!(
            r.route(&Method::PUT, "/api/v1/admin/wipe"),
            matched(Endpoint::Wipe)
        );
        assert_eq!(
            r.route(&Method::OPTIONS, "/api/v1/anything/at/all"),
            Routing::Matched(
                Endpoint::ApiOptions,
                Params {
                    job: String::new(),
                    rest: "/anything/at/all".into()
                }
            )
        );
        assert_eq!(
            r.route(&Method::GET, "/api/v1"),
            Routing::MuxRedirect("/api/v1/".into())
        );
        assert_eq!(
            r.route(&Method::PUT, "/api/v1"),
            Routing::MuxRedirect("/api/v1/".into())
        );
        assert_eq!(r.route(&Method::GET, "/api/v1/"), Routing::NotFound);
        assert_eq!(r.route(&Method::GET, "/api/v1/nope"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::POST, "/api/v1/status"),
            Routing::MethodNotAllowed("GET, OPTIONS".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/api/v1/admin/wipe"),
            Routing::MethodNotAllowed("OPTIONS, PUT".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/api/v1/status/"),
            Routing::Redirect("/api/v1/status".into())
        );
        assert_eq!(r.route(&Method::GET, "/API/v1/status"), Routing::NotFound);
        let without_admin = Router::new("", "/metrics", false);
        assert_eq!(
            without_admin.route(&Method::PUT, "/api/v1/admin/wipe"),
            Routing::NotFound
        );
        assert_eq!(r.route(&Method::GET, "/"), matched(Endpoint::Page));
        assert_eq!(r.route(&Method::GET, "/status"), matched(Endpoint::Page));
        assert_eq!(
            r.route(&Method::GET, "/static"),
            Routing::Redirect("/static/".into())
        );
    }

    #[test]
    fn prefix_moves_everything() {
        let r = Router::new("/pg", "/pg/metrics", false);
        assert_eq!(r.route(&Method::PUT, "/pg/metrics/job/x"), push("x", ""));
        assert_eq!(r.route(&Method::PUT, "/metrics/job/x"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/pg/-/healthy"),
            Routing::Matched(Endpoint::Healthy, Params::default())
        );
        assert_eq!(r.route(&Method::GET, "/-/healthy"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/pg/-/quit"),
            Routing::Matched(Endpoint::QuitWrongMethod, Params::default())
        );
        assert_eq!(r.route(&Method::GET, "/-/quit"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/pg/api/v1/status"),
            Routing::Matched(Endpoint::ApiStatus, Params::default())
        );
        assert_eq!(
            r.route(&Method::GET, "/pg/api/v1"),
            Routing::MuxRedirect("/pg/api/v1/".into())
        );
        assert_eq!(r.route(&Method::GET, "/api/v1/status"), Routing::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/pg"),
            Routing::Redirect("/pg/".into())
        );
        assert_eq!(
            r.route(&Method::GET, "/pg/static/app.js"),
            Routing::Matched(
                Endpoint::Static,
                Params {
                    job: String::new(),
                    rest: "/app.js".into()
                }
            )
        );
        assert_eq!(
            r.route(&Method::PUT, "/pg/metrics/job/"),
            Routing::Redirect("/pg/metrics/job".into())
        );
    }
}
