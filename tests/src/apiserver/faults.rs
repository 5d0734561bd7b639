//! Request log, counters and programmable faults.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Which requests a fault or delay applies to (`None` matches any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    #[serde(default)]
    pub verb: Option<String>,
    /// Plural resource name (`secrets`, `secretkeyrings`, ...).
    #[serde(default)]
    pub resource: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Subresource (`status`; `""` matches requests without one).
    #[serde(default)]
    pub subresource: Option<String>,
    /// The requesting user (after impersonation).
    #[serde(default)]
    pub user: Option<String>,
}

impl Matcher {
    fn matches(&self, r: &RequestInfo) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == "*" || w == have);
        ok(&self.verb, &r.verb)
            && ok(&self.resource, &r.resource)
            && ok(&self.namespace, &r.namespace)
            && ok(&self.name, &r.name)
            && self.subresource.as_deref().is_none_or(|w| w == r.subresource)
            && ok(&self.user, &r.user)
    }
}

/// Fail matching requests: the `nth` next one (1 = the next) and `times`
/// consecutive ones from there, with `status` (409 or 500, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Which requests.
    #[serde(flatten)]
    pub matcher: Matcher,
    /// Which matching request fails first (1-based).
    #[serde(default = "one")]
    pub nth: u64,
    /// How many fail.
    #[serde(default = "one")]
    pub times: u64,
    /// HTTP status to answer with.
    pub status: u16,
    /// Seconds for a `Retry-After` header (and the Status's
    /// `details.retryAfterSeconds`), as kube-apiserver sends with 429 and
    /// some 503/504 answers.
    #[serde(default, rename = "retryAfterSeconds")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing)]
    seen: u64,
}

fn one() -> u64 {
    1
}

impl Fault {
    /// A fault failing the `nth` matching request with `status`.
    pub fn new(matcher: Matcher, nth: u64, status: u16) -> Self {
        Fault { matcher, nth: nth.max(1), times: 1, status, retry_after: None, seen: 0 }
    }
}

/// Delay matching requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    /// Which requests.
    #[serde(flatten)]
    pub matcher: Matcher,
    /// Milliseconds.
    pub ms: u64,
}

/// What a request is, for counting and faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInfo {
    /// Kubernetes verb.
    pub verb: String,
    /// Plural resource (`""` for discovery and other paths).
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// API group (`""` for the core group and non-resource requests).
    #[serde(default)]
    pub group: String,
    /// Subresource (`status`, `token`, `finalize`).
    #[serde(default)]
    pub subresource: String,
    /// Who sent it.
    #[serde(default)]
    pub user: String,
    /// HTTP method and path, as logged.
    pub line: String,
    /// HTTP status answered.
    pub code: u16,
}

/// One (user, verb, group, resource[/subresource], scope) a request used,
/// for measuring least privilege.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Who.
    pub user: String,
    /// Verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    /// Namespace (`""`: cluster scope or all namespaces).
    pub namespace: String,
}

/// How a [`Usage`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    /// Requests.
    pub requests: u64,
    /// Of which denied (403).
    pub forbidden: u64,
}

/// Counters and faults.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Vec<Fault>,
    delays: Vec<Delay>,
    counts: BTreeMap<(String, String), u64>,
    log: VecDeque<RequestInfo>,
    usage: BTreeMap<Usage, UsageCount>,
}

/// The decision for a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Answer with this status instead of serving.
    pub fail: Option<u16>,
    /// With this `Retry-After`.
    pub retry_after: Option<u64>,
    /// Wait this long first.
    pub delay_ms: u64,
}

impl Faults {
    /// Add a fault.
    pub fn add_fault(&mut self, f: Fault) {
        self.faults.push(f);
    }

    /// Add a delay.
    pub fn add_delay(&mut self, d: Delay) {
        self.delays.push(d);
    }

    /// Remove all faults and delays.
    pub fn clear(&mut self) {
        self.faults.clear();
        self.delays.clear();
    }

    /// Count a request and decide whether it is failed or delayed.
    pub fn decide(&mut self, r: &RequestInfo) -> Decision {
        *self.counts.entry((r.verb.clone(), r.resource.clone())).or_default() += 1;
        let mut d = Decision::default();
        for f in self.faults.iter_mut().filter(|f| f.matcher.matches(r)) {
            f.seen += 1;
            if d.fail.is_none() && f.seen >= f.nth && f.seen < f.nth + f.times {
                d.fail = Some(f.status);
                d.retry_after = f.retry_after;
            }
        }
        self.faults.retain(|f| f.seen < f.nth + f.times - 1);
        d.delay_ms = self.delays.iter().filter(|x| x.matcher.matches(r)).map(|x| x.ms).max().unwrap_or(0);
        d
    }

    /// Record a finished request.
    pub fn log(&mut self, r: RequestInfo) {
        if !r.resource.is_empty() {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let key = Usage {
                user: r.user.clone(),
                verb: r.verb.clone(),
                group: r.group.clone(),
                resource,
                namespace: r.namespace.clone(),
            };
            let u = self.usage.entry(key).or_default();
            u.requests += 1;
            if r.code == 403 {
                u.forbidden += 1;
            }
        }
        self.log.push_back(r);
        if self.log.len() > 5000 {
            self.log.pop_front();
        }
    }

    /// Requests counted per (verb, resource).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.clone()
    }

    /// The most recent requests.
    pub fn recent(&self) -> Vec<RequestInfo> {
        self.log.iter().cloned().collect()
    }

    /// Every (user, verb, group, resource, namespace) used since the last
    /// reset, with counts; never truncated.
    pub fn usage(&self) -> BTreeMap<Usage, UsageCount> {
        self.usage.clone()
    }

    /// Forget counts, usage and the log.
    pub fn reset_counts(&mut self) {
        self.counts.clear();
        self.log.clear();
        self.usage.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(verb: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            resource: "secrets".into(),
            namespace: "a".into(),
            name: "x".into(),
            group: String::new(),
            subresource: String::new(),
            user: "u".into(),
            line: String::new(),
            code: 0,
        }
    }

    #[test]
    fn faults_match_user_and_subresource_and_carry_retry_after() {
        let mut f = Faults::default();
        let mut fault = Fault::new(
            Matcher { user: Some("one".into()), subresource: Some("status".into()), ..Matcher::default() },
            1,
            503,
        );
        fault.retry_after = Some(7);
        f.add_fault(fault);
        let mut other_user = req("patch");
        other_user.subresource = "status".into();
        other_user.user = "two".into();
        assert_eq!(f.decide(&other_user), Decision::default());
        let mut main = req("patch");
        main.user = "one".into();
        assert_eq!(f.decide(&main), Decision::default(), "no subresource");
        main.subresource = "status".into();
        assert_eq!(f.decide(&main), Decision { fail: Some(503), retry_after: Some(7), delay_ms: 0 });
        let parsed: Fault =
            serde_json::from_str(r#"{"verb": "patch", "status": 429, "retryAfterSeconds": 1}"#).unwrap();
        assert_eq!(parsed.retry_after, Some(1));
    }

    #[test]
    fn nth_matching_request_fails_times() {
        let mut f = Faults::default();
        let mut fault = Fault::new(Matcher { verb: Some("update".into()), ..Matcher::default() }, 2, 409);
        fault.times = 2;
        f.add_fault(fault);
        let got: Vec<Option<u16>> =
            ["update", "get", "update", "update", "update"].iter().map(|v| f.decide(&req(v)).fail).collect();
        assert_eq!(got, vec![None, None, Some(409), Some(409), None]);
        assert_eq!(f.counts()[&("update".into(), "secrets".into())], 4);
        let mut denied = req("list");
        denied.code = 403;
        f.log(denied);
        f.log(req("list"));
        let u = f.usage();
        let (k, v) = u.iter().next().unwrap();
        assert_eq!(
            (k.verb.as_str(), k.resource.as_str(), v.requests, v.forbidden),
            ("list", "secrets", 2, 1)
        );
    }
}
