//! Prometheus text exposition, and the counters others record into.
//!
//! This module knows no domain: the sweeper, the privacy layer and the
//! data layer each own their [`Counter`]s and write their own metrics into
//! an [`Exposition`] when `/metrics` is scraped. The format is written by
//! hand: two dozen unlabelled counters and gauges need no framework (see
//! the README, "Architecture", for why `prometheus-client` was declined).
//! No metric carries a label with an address, path or JID.

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

/// A number that only grows (or, for gauges kept by their owner, is set).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Replaces the value (for gauges such as "files in the last pass").
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The text of one scrape, in the Prometheus text format 0.0.4.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// The `Content-Type` of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Adds the counter `name` (which ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.sample(name, "counter", help, value);
    }

    /// Adds the gauge `name`.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.sample(name, "gauge", help, value);
    }

    /// Adds the counter `name` with one series per `(label value, count)`
    /// of the label `label` (values are fixed words, never client data).
    pub fn labelled_counter(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: &[(&str, u64)],
    ) {
        self.series(
            name,
            "counter",
            help,
            series
                .iter()
                .map(|(value, count)| (format!("{label}=\"{value}\""), *count)),
        );
    }

    /// Adds the metric `name` of type `kind` with one sample per
    /// `(labels, value)`, `labels` written as is between the braces
    /// (`a="x",b="y"`; fixed words, never client data). The name is
    /// declared even when there is no sample yet.
    pub fn series(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, u64)>,
    ) {
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, value) in samples {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }

    fn sample(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        let _ = write!(
            self.text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }

    /// The text to serve.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let counter = Counter::default();
        counter.inc();
        counter.add(2);
        let mut out = Exposition::new();
        out.counter("a_total", "As seen.", counter.get());
        out.gauge("b_seconds", "Bs.", format!("{:.6}", 1.5));
        assert_eq!(
            out.finish(),
            "# HELP a_total As seen.\n# TYPE a_total counter\na_total 3\n\
             # HELP b_seconds Bs.\n# TYPE b_seconds gauge\nb_seconds 1.500000\n"
        );
    }
}
