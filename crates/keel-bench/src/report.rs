//! Collects figures and renders BENCHMARKS.md.

use std::time::Duration;

pub struct Report {
    sections: Vec<Section>,
}

struct Section {
    title: String,
    method: String,
    rows: Vec<(String, String)>,
}

impl Report {
    pub fn new() -> Self {
        Report {
            sections: Vec::new(),
        }
    }

    /// A titled section with a sentence on method and rows of (figure, value).
    pub fn section(&mut self, title: &str, method: &str, rows: Vec<(String, String)>) {
        self.sections.push(Section {
            title: title.to_owned(),
            method: method.to_owned(),
            rows,
        });
    }

    pub fn markdown(&self) -> String {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let mut out = String::new();
        out.push_str("# Benchmarks\n\n");
        out.push_str("Produced by `make bench` (`cargo run --release -p keel-bench -- --write BENCHMARKS.md`), ");
        out.push_str("against the local Postgres and a private NATS JetStream server, on a shared machine with ");
        out.push_str(&format!("{cores} cores. Machines here are noisy: compare figures within one run, not across runs. \
             The local Postgres is the disposable dev cluster (fsync, synchronous_commit and \
             full_page_writes off), so these figures leave out the cost of flushing to disk.\n\n"));
        out.push_str(&format!(
            "Run at {}.\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        ));
        for Section {
            title,
            method,
            rows,
        } in &self.sections
        {
            out.push_str(&format!(
                "\n## {title}\n\n{method}\n\n| figure | value |\n|---|---|\n"
            ));
            for (figure, value) in rows {
                out.push_str(&format!("| {figure} | {value} |\n"));
            }
        }
        out
    }
}

/// The q-quantile (0..=1) of a sorted slice.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
