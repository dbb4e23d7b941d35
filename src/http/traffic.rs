//! What the public listener served, for `/metrics`: requests by method
//! and status, refusals by their `Upslot-Error` code, bytes in and out,
//! and connections open. Counting is a few relaxed atomic additions per
//! request; only a refusal takes a (short, uncontended) lock.
//!
//! Labels are fixed words: a method from a closed list, a three-digit
//! status, a code from [`super::ApiError::code`]. Nothing a client sends
//! becomes a label.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use tokio::sync::Semaphore;

use crate::metrics::{Counter, Exposition};

/// The methods counted one by one; anything else is `other`.
const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "other"];
/// Statuses 100 to 599, one counter each per method.
const STATUSES: usize = 500;

/// Traffic counters of one process.
pub struct Traffic {
    requests: Vec<AtomicU64>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    uploaded_bytes: Counter,
    served_bytes: Counter,
    connection_slots: Arc<Semaphore>,
    connections_refused: Counter,
    connections_max: usize,
}

impl Traffic {
    /// Empty counters for a server that serves at most `connections_max`
    /// connections at once.
    pub fn new(connections_max: usize) -> Traffic {
        Traffic {
            requests: (0..METHODS.len() * STATUSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            refusals: Mutex::new(BTreeMap::new()),
            uploaded_bytes: Counter::default(),
            served_bytes: Counter::default(),
            connection_slots: Arc::new(Semaphore::new(connections_max)),
            connections_refused: Counter::default(),
            connections_max,
        }
    }

    /// Counts one answered request, and its refusal code if it had one.
    pub fn record(&self, method: &Method, status: StatusCode, code: Option<&'static str>) {
        let index = method_index(method) * STATUSES + status_index(status);
        if let Some(counter) = self.requests.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(code) = code {
            let mut refusals = self
                .refusals
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *refusals.entry(code).or_insert(0) += 1;
        }
    }

    /// Counts the bytes of a completed upload.
    pub fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.add(bytes);
    }

    /// Counts the file bytes a GET response is about to send (its
    /// `Content-Length`, whether or not the client reads it all).
    pub fn served(&self, bytes: u64) {
        self.served_bytes.add(bytes);
    }

    /// The `connections_max` slots connections hold from accept to close:
    /// the server takes one per connection, and the slots taken are the
    /// connections open.
    pub fn connection_slots(&self) -> &Arc<Semaphore> {
        &self.connection_slots
    }

    /// Counts a connection closed at accept because the limit was reached.
    pub fn refuse_connection(&self) {
        self.connections_refused.inc();
    }

    /// Writes the counters.
    pub fn expose(&self, out: &mut Exposition) {
        let mut requests = Vec::new();
        for (method_at, method) in METHODS.iter().enumerate() {
            for status_at in 0..STATUSES {
                let count = self.requests[method_at * STATUSES + status_at].load(Ordering::Relaxed);
                if count > 0 {
                    requests.push((*method, status_at + 100, count));
                }
            }
        }
        out.series(
            "upslot_requests_total",
            "counter",
            "Requests answered on the public listener, by method and status.",
            requests.iter().map(|(method, status, count)| {
                (format!("method=\"{method}\",status=\"{status}\""), *count)
            }),
        );
        let refusals: Vec<(&str, u64)> = self
            .refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(code, count)| (*code, *count))
            .collect();
        out.labelled_counter(
            "upslot_refusals_total",
            "Requests answered with an error, by the code of their Upslot-Error header.",
            "code",
            &refusals,
        );
        out.counter(
            "upslot_uploaded_bytes_total",
            "Bytes of uploads stored.",
            self.uploaded_bytes.get(),
        );
        out.counter(
            "upslot_served_bytes_total",
            "File bytes in GET responses (as promised by their Content-Length).",
            self.served_bytes.get(),
        );
        out.gauge(
            "upslot_connections_open",
            "Connections open now, public and admin.",
            self.connections_max - self.connection_slots.available_permits(),
        );
        out.gauge(
            "upslot_connections_max",
            "The configured limit on connections open at once (server.max_connections).",
            self.connections_max,
        );
        out.counter(
            "upslot_connections_refused_total",
            "Connections closed at accept because server.max_connections were open.",
            self.connections_refused.get(),
        );
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::OPTIONS => 4,
        _ => 5,
    }
}

fn status_index(status: StatusCode) -> usize {
    // StatusCode is always 100..=999; 600 and above share the last slot.
    usize::from(status.as_u16() - 100).min(STATUSES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(traffic: &Traffic) -> String {
        let mut out = Exposition::new();
        traffic.expose(&mut out);
        out.finish()
    }

    #[test]
    fn requests_are_counted_by_method_and_status() {
        let traffic = Traffic::new(10);
        traffic.record(&Method::GET, StatusCode::OK, None);
        traffic.record(&Method::GET, StatusCode::OK, None);
        traffic.record(
            &Method::PUT,
            StatusCode::TOO_MANY_REQUESTS,
            Some("quota_daily"),
        );
        traffic.record(
            &Method::PATCH,
            StatusCode::METHOD_NOT_ALLOWED,
            Some("method_not_allowed"),
        );
        let text = scrape(&traffic);
        assert!(text.contains("upslot_requests_total{method=\"GET\",status=\"200\"} 2\n"));
        assert!(text.contains("upslot_requests_total{method=\"PUT\",status=\"429\"} 1\n"));
        assert!(text.contains("upslot_requests_total{method=\"other\",status=\"405\"} 1\n"));
        assert!(text.contains("upslot_refusals_total{code=\"quota_daily\"} 1\n"));
        assert!(
            !text.contains("status=\"201\""),
            "no series for statuses never sent"
        );
    }

    #[test]
    fn every_name_is_exported_before_any_traffic() {
        let text = scrape(&Traffic::new(10));
        for name in [
            "upslot_requests_total",
            "upslot_refusals_total",
            "upslot_uploaded_bytes_total",
            "upslot_served_bytes_total",
            "upslot_connections_open",
            "upslot_connections_max",
            "upslot_connections_refused_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(text.contains("upslot_connections_max 10\n"));
    }

    #[test]
    fn connections_are_counted_while_open() {
        let traffic = Traffic::new(10);
        let first = Arc::clone(traffic.connection_slots())
            .try_acquire_owned()
            .unwrap();
        let second = Arc::clone(traffic.connection_slots())
            .try_acquire_owned()
            .unwrap();
        drop(first);
        assert!(scrape(&traffic).contains("upslot_connections_open 1\n"));
        drop(second);
        assert!(scrape(&traffic).contains("upslot_connections_open 0\n"));
    }

    #[test]
    fn bytes_add_up() {
        let traffic = Traffic::new(1);
        traffic.uploaded(5);
        traffic.uploaded(7);
        traffic.served(3);
        let text = scrape(&traffic);
        assert!(text.contains("upslot_uploaded_bytes_total 12\n"));
        assert!(text.contains("upslot_served_bytes_total 3\n"));
    }
}
