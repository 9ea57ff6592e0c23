//! `/health`: every sink's own verdict, gathered.

use crate::SinkStatus;

/// What `/health` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// (sink ID, reason) of every unhealthy sink, in configuration order; empty when all are
    /// healthy.
    pub unhealthy: Vec<(String, String)>,
}

impl HealthReport {
    /// Whether every sink is healthy.
    pub fn is_healthy(&self) -> bool {
        self.unhealthy.is_empty()
    }

    /// The JSON body: `{"status":"ok"}`, or `{"status":"unhealthy","sinks":{"ID":"reason"}}`.
    pub fn to_json(&self) -> String {
        if self.is_healthy() {
            return serde_json::json!({ "status": "ok" }).to_string();
        }
        let sinks: serde_json::Map<String, serde_json::Value> = self
            .unhealthy
            .iter()
            .map(|(id, reason)| (id.clone(), serde_json::Value::String(reason.clone())))
            .collect();
        serde_json::json!({ "status": "unhealthy", "sinks": sinks }).to_string()
    }
}

/// Reads every sink's health now.
pub fn health_report(sinks: &[SinkStatus]) -> HealthReport {
    HealthReport {
        unhealthy: sinks
            .iter()
            .filter_map(|s| s.health.problem().map(|reason| (s.id.clone(), reason)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferry_core::{SinkHealth, SinkMetrics};

    use super::*;

    fn sink(id: &str) -> SinkStatus {
        SinkStatus {
            id: id.into(),
            metrics: Arc::new(SinkMetrics::default()),
            health: Arc::new(SinkHealth::default()),
        }
    }

    #[test]
    fn ok_while_every_sink_is_healthy_else_names_the_unhealthy_ones() {
        let sinks = vec![sink("a"), sink("b")];
        assert_eq!(health_report(&sinks).to_json(), r#"{"status":"ok"}"#);
        sinks[1].health.set_unhealthy("no broker reachable");
        let report = health_report(&sinks);
        assert!(!report.is_healthy());
        assert_eq!(
            report.to_json(),
            r#"{"status":"unhealthy","sinks":{"b":"no broker reachable"}}"#
        );
    }
}
