//! The Prometheus text exposition (format 0.0.4) of a `prometheus-client`
//! registry, as served on `/metrics` by the encstr sidecar and operator.
//!
//! `prometheus-client` writes OpenMetrics, where a counter family is declared
//! without its `_total` suffix. Prometheus' own text format (and `promtool
//! check metrics`) expects counters declared under their `_total` name, and
//! has no `# EOF` or `# UNIT` lines; this converts one into the other.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use prometheus_client::registry::Registry;

/// Content type of what [`encode`] returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut om = String::new();
    prometheus_client::encoding::text::encode(&mut om, registry).expect("writing to a String cannot fail");
    to_prometheus_text(&om)
}

/// OpenMetrics text → Prometheus text 0.0.4: counters declared with their
/// `_total` name; `# EOF` and `# UNIT` lines dropped.
pub fn to_prometheus_text(om: &str) -> String {
    let counters: Vec<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let (name, tail) = line.strip_prefix(p)?.split_once(' ')?;
            counters.contains(&name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_name_and_openmetrics_markers_go() {
        let om = "# HELP a_runs Runs.\n# TYPE a_runs counter\na_runs_total 3\n# HELP b Level.\n# TYPE b gauge\n# UNIT b seconds\nb 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_runs_total Runs.\n# TYPE a_runs_total counter\na_runs_total 3\n# HELP b Level.\n# TYPE b gauge\nb 1\n"
        );
    }
}
