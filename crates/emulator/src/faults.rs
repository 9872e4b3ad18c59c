//! Fault injection: make the next N requests to a path answer 429 or 5xx with
//! `Retry-After`, as Graph does under throttling or during an incident.

use serde::{Deserialize, Serialize};

/// One injected fault: the next `count` requests whose path matches `path` (and
/// `method`, when given) answer `status` with `Retry-After: retry_after_seconds`.
///
/// `path` matches exactly, or as a prefix when it ends with `*`
/// (`/v1.0/communications/calls/*`). The JSON form (for `POST /_emulator/faults`) is
/// camelCase: `{"path":"/v1.0/communications/calls","status":429,"retryAfterSeconds":2,"count":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Request path to match (exact, or prefix ending in `*`).
    pub path: String,
    /// HTTP method to match (any when `None`).
    #[serde(default)]
    pub method: Option<String>,
    /// Status to answer: 429, or 500-599.
    pub status: u16,
    /// Value of `Retry-After`, seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
    /// How many requests to fail.
    #[serde(default = "default_count")]
    pub count: u32,
}

fn default_retry_after() -> u64 {
    1
}

fn default_count() -> u32 {
    1
}

impl Fault {
    /// `429 Too Many Requests` for the next `count` requests to `path`.
    pub fn too_many_requests(
        path: impl Into<String>,
        count: u32,
        retry_after_seconds: u64,
    ) -> Self {
        Fault {
            path: path.into(),
            method: None,
            status: 429,
            retry_after_seconds,
            count,
        }
    }

    /// `503 Service Unavailable` for the next `count` requests to `path`.
    pub fn service_unavailable(
        path: impl Into<String>,
        count: u32,
        retry_after_seconds: u64,
    ) -> Self {
        Fault {
            status: 503,
            ..Fault::too_many_requests(path, count, retry_after_seconds)
        }
    }

    /// Only requests with this method (`POST`, `GET`, ...).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Why this fault cannot be injected, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !(self.status == 429 || (500..=599).contains(&self.status)) {
            return Some(format!(
                "status: {} is not injectable; use 429 or 500-599",
                self.status
            ));
        }
        if !self.path.starts_with('/') {
            return Some(format!("path: `{}` must start with '/'", self.path));
        }
        if self.count == 0 {
            return Some("count: must be at least 1".into());
        }
        None
    }

    /// Whether a request matches.
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        path_ok
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    /// The Graph error code for the status.
    pub(crate) fn error_code(&self) -> &'static str {
        match self.status {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "InternalServerError",
        }
    }
}

/// Take one use of the first fault matching the request; used-up faults are removed.
pub(crate) fn take_matching(faults: &mut Vec<Fault>, method: &str, path: &str) -> Option<Fault> {
    let i = faults.iter().position(|f| f.matches(method, path))?;
    let fault = faults[i].clone();
    faults[i].count -= 1;
    if faults[i].count == 0 {
        faults.remove(i);
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_match_and_use_up() {
        let mut faults = vec![
            Fault::too_many_requests("/v1.0/communications/calls", 2, 3),
            Fault::service_unavailable("/beta/*", 1, 1).method("GET"),
        ];
        assert!(take_matching(&mut faults, "POST", "/v1.0/communications/calls/x").is_none());
        assert!(take_matching(&mut faults, "POST", "/beta/communications/calls").is_none());
        let f = take_matching(&mut faults, "GET", "/beta/communications/calls/1");
        assert_eq!(f.map(|f| f.status), Some(503));
        assert_eq!(faults.len(), 1);
        for _ in 0..2 {
            let f = take_matching(&mut faults, "POST", "/v1.0/communications/calls");
            assert_eq!(f.map(|f| (f.status, f.retry_after_seconds)), Some((429, 3)));
        }
        assert!(faults.is_empty());
    }

    #[test]
    fn problems() {
        assert!(Fault::too_many_requests("/x", 1, 1).problem().is_none());
        let mut f = Fault::too_many_requests("/x", 1, 1);
        f.status = 404;
        assert!(f.problem().is_some_and(|p| p.starts_with("status")));
        assert!(Fault::too_many_requests("x", 1, 1).problem().is_some());
        assert!(Fault::too_many_requests("/x", 0, 1).problem().is_some());
    }
}
