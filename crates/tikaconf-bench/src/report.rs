//! The table the benchmark prints, and the target checks under it.
//!
//! Each workload yields a [`Section`]: rows of (case, system, figures) and the
//! issue's targets checked against ratios from the same run. A system that could
//! not run (its server is not installed) gets a row saying "not run", and every
//! target that needs it says "not checked": a missing baseline is reported, never
//! replaced by a guess or a figure from elsewhere.

use std::fmt::Write as _;

use crate::stats::{Measurement, fmt_duration, fmt_rate, micros};

/// The system every ratio is computed for.
pub const TIKACONF: &str = "tikaconf";

/// What a row holds.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran(Measurement),
    NotRun(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub system: String,
    pub outcome: Outcome,
}

/// Which figure ratios compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Lower is better: ratios of p50 and p99, tikaconf over the baseline.
    Latency,
    /// Higher is better: ratios of operations per second, tikaconf over the baseline.
    Throughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P50,
    P99,
    Throughput,
}

/// A target with its verdict. `met` is `None` when it could not be checked.
#[derive(Debug, Clone)]
pub struct Check {
    pub label: String,
    pub result: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub kind: Kind,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    /// Free lines printed under the table (setup figures, caveats).
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(title: impl Into<String>, kind: Kind) -> Section {
        Section {
            title: title.into(),
            kind,
            rows: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn ran(&mut self, case: &str, system: &str, m: Measurement) {
        self.rows.push(Row {
            case: case.into(),
            system: system.into(),
            outcome: Outcome::Ran(m),
        });
    }

    pub fn not_run(&mut self, case: &str, system: &str, why: impl Into<String>) {
        self.rows.push(Row {
            case: case.into(),
            system: system.into(),
            outcome: Outcome::NotRun(why.into()),
        });
    }

    /// Records a row from a result: an error becomes a "not run" row that says why.
    pub fn record(&mut self, case: &str, system: &str, result: anyhow::Result<Measurement>) {
        match result {
            Ok(m) => self.ran(case, system, m),
            Err(e) => self.not_run(case, system, format!("failed: {e:#}")),
        }
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    fn find(&self, case: &str, system: &str) -> Option<&Outcome> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.system == system)
            .map(|r| &r.outcome)
    }

    /// Checks `tikaconf / baseline` of `metric` in `case` against `limit`: at
    /// most `limit` for latencies, at least `limit` for throughput.
    pub fn ratio_target(&mut self, case: &str, baseline: &str, metric: Metric, limit: f64) {
        let higher_is_better = metric == Metric::Throughput;
        let label = format!(
            "{case}: {} {} {limit}x {baseline}",
            metric_name(metric),
            if higher_is_better { ">=" } else { "<=" }
        );
        let (ours, theirs) = (self.find(case, TIKACONF), self.find(case, baseline));
        let check = match (ours, theirs) {
            (Some(Outcome::Ran(a)), Some(Outcome::Ran(b))) => match ratio(a, b, metric) {
                Some(r) => Check {
                    label,
                    result: format!("{r:.2}x ({} vs {})", value(a, metric), value(b, metric)),
                    met: Some(if higher_is_better {
                        r >= limit
                    } else {
                        r <= limit
                    }),
                },
                None => Check {
                    label,
                    result: "no figure to compare".into(),
                    met: None,
                },
            },
            (_, Some(Outcome::NotRun(why))) | (Some(Outcome::NotRun(why)), _) => Check {
                label,
                result: format!("not checked ({why})"),
                met: None,
            },
            _ => Check {
                label,
                result: "not checked (no row)".into(),
                met: None,
            },
        };
        self.checks.push(check);
    }

    /// An absolute target (scale): `value` shown as `result`, met when `met`.
    pub fn absolute_target(&mut self, label: impl Into<String>, result: String, met: bool) {
        self.checks.push(Check {
            label: label.into(),
            result,
            met: Some(met),
        });
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n== {} ==", self.title);
        let header = [
            "case",
            "system",
            "n",
            "p50",
            "p99",
            "max",
            "throughput",
            "ratio (tikaconf / baseline)",
        ];
        let mut lines: Vec<[String; 8]> = vec![header.map(String::from)];
        for row in &self.rows {
            let cells = match &row.outcome {
                Outcome::Ran(m) => [
                    row.case.clone(),
                    row.system.clone(),
                    m.n.to_string(),
                    fmt_duration(m.p50),
                    fmt_duration(m.p99),
                    fmt_duration(m.max),
                    fmt_rate(m.per_sec),
                    self.ratios(row),
                ],
                Outcome::NotRun(why) => [
                    row.case.clone(),
                    row.system.clone(),
                    "-".into(),
                    "not run".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    why.clone(),
                ],
            };
            lines.push(cells);
        }
        let mut widths = [0usize; 8];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for line in &lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if (2..=6).contains(&i) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if i < 7 {
                        text.push_str(&" ".repeat(pad));
                    }
                }
                if i < 7 {
                    text.push_str("  ");
                }
            }
            let _ = writeln!(out, "{}", text.trim_end());
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        for check in &self.checks {
            let verdict = match check.met {
                Some(true) => "MET",
                Some(false) => "NOT MET",
                None => "NOT CHECKED",
            };
            let _ = writeln!(
                out,
                "  target {}: {} -> {verdict}",
                check.label, check.result
            );
        }
        out
    }

    /// The ratio cell of a tikaconf row: one entry per baseline of the same case.
    fn ratios(&self, row: &Row) -> String {
        if row.system != TIKACONF {
            return String::new();
        }
        let Outcome::Ran(ours) = &row.outcome else {
            return String::new();
        };
        let mut parts = Vec::new();
        for other in &self.rows {
            if other.case != row.case || other.system == TIKACONF {
                continue;
            }
            match &other.outcome {
                Outcome::Ran(theirs) => match self.kind {
                    Kind::Latency => {
                        let p50 = ratio(ours, theirs, Metric::P50).unwrap_or(f64::NAN);
                        let p99 = ratio(ours, theirs, Metric::P99).unwrap_or(f64::NAN);
                        parts.push(format!("vs {}: p50 {p50:.2}x, p99 {p99:.2}x", other.system));
                    }
                    Kind::Throughput => {
                        let r = ratio(ours, theirs, Metric::Throughput).unwrap_or(f64::NAN);
                        parts.push(format!("vs {}: {r:.2}x", other.system));
                    }
                },
                Outcome::NotRun(_) => parts.push(format!("vs {}: not run", other.system)),
            }
        }
        parts.join("; ")
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::P50 => "p50",
        Metric::P99 => "p99",
        Metric::Throughput => "throughput",
    }
}

fn value(m: &Measurement, metric: Metric) -> String {
    match metric {
        Metric::P50 => fmt_duration(m.p50),
        Metric::P99 => fmt_duration(m.p99),
        Metric::Throughput => fmt_rate(m.per_sec),
    }
}

fn ratio(a: &Measurement, b: &Measurement, metric: Metric) -> Option<f64> {
    let (x, y) = match metric {
        Metric::P50 => (micros(a.p50), micros(b.p50)),
        Metric::P99 => (micros(a.p99), micros(b.p99)),
        Metric::Throughput => (a.per_sec, b.per_sec),
    };
    (y > 0.0).then(|| x / y)
}

/// The closing summary: every target of the run with its verdict.
pub fn summary(sections: &[Section]) -> String {
    let mut out = String::from("\n== targets ==\n");
    let (mut met, mut missed, mut unchecked) = (0, 0, 0);
    for s in sections {
        for c in &s.checks {
            match c.met {
                Some(true) => met += 1,
                Some(false) => missed += 1,
                None => unchecked += 1,
            }
        }
    }
    let _ = writeln!(
        out,
        "{met} met, {missed} not met, {unchecked} not checked (ratios from this run only)"
    );
    out
}
