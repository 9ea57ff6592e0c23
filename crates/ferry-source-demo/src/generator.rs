use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::{Fields, HOST, LogEvent, MESSAGE, TIMESTAMP, Value};

use crate::config::DemoFormat;

const HOSTS: &[&str] = &["web-1", "web-2", "web-3", "api-1", "db-1"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/orders",
    "/api/v1/users/me",
    "/static/app.js",
    "/login",
    "/health",
];
const STATUSES: &[i64] = &[200, 200, 200, 200, 201, 204, 301, 304, 400, 404, 500, 503];
const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64)",
    "kube-probe/1.31",
    "Go-http-client/2.0",
];
const SYSLOG: &[(&str, &str, i64, &str)] = &[
    (
        "sshd",
        "auth",
        6,
        "Accepted publickey for deploy from 10.0.4.17 port 52144 ssh2",
    ),
    (
        "sshd",
        "auth",
        4,
        "Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2",
    ),
    (
        "systemd",
        "daemon",
        6,
        "Started Daily apt upgrade and clean activities.",
    ),
    (
        "kernel",
        "kern",
        4,
        "TCP: request_sock_TCP: Possible SYN flooding on port 443.",
    ),
    (
        "cron",
        "cron",
        6,
        "(root) CMD (/usr/local/bin/backup --incremental)",
    ),
    (
        "postgres",
        "local0",
        3,
        "ERROR: duplicate key value violates unique constraint \"orders_pkey\"",
    ),
];
const SEVERITIES: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A reproducible generator of demo log events.
#[derive(Debug)]
pub struct DemoGenerator {
    rng: fastrand::Rng,
    format: DemoFormat,
    hosts: Vec<Bytes>,
}

impl DemoGenerator {
    /// A generator of `format` events; the same seed gives the same stream.
    pub fn new(format: DemoFormat, seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            format,
            hosts: HOSTS.iter().map(|h| Bytes::from_static(h.as_bytes())).collect(),
        }
    }

    /// The next event, stamped `now`.
    pub fn next_event(&mut self, now: DateTime<Utc>) -> LogEvent {
        let access = match self.format {
            DemoFormat::Access => true,
            DemoFormat::Syslog => false,
            DemoFormat::Mixed => self.rng.bool(),
        };
        let host = self.hosts[self.rng.usize(..self.hosts.len())].clone();
        let mut fields = Fields::with_capacity(12);
        fields.insert(MESSAGE, Value::Null);
        fields.insert(TIMESTAMP, Value::Timestamp(now));
        fields.insert(HOST, Value::Bytes(host.clone()));
        let message = if access {
            self.access(&mut fields, now)
        } else {
            self.syslog(&mut fields, now, &host)
        };
        fields.insert(MESSAGE, Value::from(message));
        LogEvent::from_fields(fields)
    }

    fn access(&mut self, fields: &mut Fields, now: DateTime<Utc>) -> String {
        let rng = &mut self.rng;
        let ip = format!("10.{}.{}.{}", rng.u8(0..4), rng.u8(..), rng.u8(1..255));
        let method = METHODS[rng.usize(..METHODS.len())];
        let path = PATHS[rng.usize(..PATHS.len())];
        let status = STATUSES[rng.usize(..STATUSES.len())];
        let bytes = rng.i64(0..50_000);
        let user = format!("user-{}", rng.u32(1..500));
        let agent = AGENTS[rng.usize(..AGENTS.len())];
        fields.insert("unit", Value::from("nginx"));
        fields.insert("client_ip", Value::from(ip.as_str()));
        fields.insert("user_id", Value::from(user.as_str()));
        fields.insert("method", Value::from(method));
        fields.insert("path", Value::from(path));
        fields.insert("status", Value::Integer(status));
        fields.insert("bytes", Value::Integer(bytes));
        fields.insert(
            "level",
            Value::from(if status >= 500 {
                "error"
            } else if status >= 400 {
                "warn"
            } else {
                "info"
            }),
        );
        format!(
            "{ip} - {user} [{}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\"",
            now.format("%d/%b/%Y:%H:%M:%S %z")
        )
    }

    fn syslog(&mut self, fields: &mut Fields, now: DateTime<Utc>, host: &Bytes) -> String {
        let (unit, facility, severity, text) = SYSLOG[self.rng.usize(..SYSLOG.len())];
        let pid = self.rng.i64(100..40_000);
        let severity_name = SEVERITIES[severity as usize];
        fields.insert("unit", Value::from(unit));
        fields.insert("pid", Value::Integer(pid));
        fields.insert("facility", Value::from(facility));
        fields.insert("severity", Value::from(severity_name));
        fields.insert(
            "level",
            Value::from(match severity {
                0..=3 => "error",
                4 => "warn",
                _ => "info",
            }),
        );
        let priority = facility_code(facility) * 8 + severity;
        format!(
            "<{priority}>1 {} {} {unit} {pid} - - {text}",
            now.to_rfc3339_opts(SecondsFormat::Millis, true),
            String::from_utf8_lossy(host)
        )
    }
}

fn facility_code(facility: &str) -> i64 {
    match facility {
        "kern" => 0,
        "daemon" => 3,
        "auth" => 4,
        "cron" => 9,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let now = Utc::now();
        let mut a = DemoGenerator::new(DemoFormat::Mixed, 7);
        let mut b = DemoGenerator::new(DemoFormat::Mixed, 7);
        for _ in 0..50 {
            assert_eq!(a.next_event(now), b.next_event(now));
        }
    }

    #[test]
    fn events_carry_templatable_fields() {
        let now = Utc::now();
        let mut g = DemoGenerator::new(DemoFormat::Access, 1);
        let e = g.next_event(now);
        for field in [
            "message",
            "timestamp",
            "host",
            "unit",
            "status",
            "level",
            "user_id",
        ] {
            assert!(e.fields().contains(field), "missing {field}");
        }
        let mut g = DemoGenerator::new(DemoFormat::Syslog, 1);
        let e = g.next_event(now);
        assert!(e.message().unwrap().starts_with(b"<"));
        assert!(e.fields().contains("severity"));
    }
}
