//! Results: the table printed at the end of a run and the BENCHMARKS.md writer.
//!
//! BENCHMARKS.md holds hand-written prose plus one generated block per benchmark,
//! between `<!-- bench:begin ID -->` and `<!-- bench:end ID -->`. A run replaces the
//! blocks of the benchmarks it ran and leaves the others alone; a block seen for the
//! first time is appended before `<!-- bench:results-end -->` (or at the end of the file).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measured value, formatted.
    pub measured: String,
    /// The performance target, or empty for a supporting figure.
    pub target: String,
    /// Whether the target was met; `None` for a supporting figure.
    pub ok: Option<bool>,
}

impl Row {
    /// A figure with a target.
    pub fn check(
        figure: impl Into<String>,
        measured: impl Into<String>,
        target: impl Into<String>,
        ok: bool,
    ) -> Row {
        Row {
            figure: figure.into(),
            measured: measured.into(),
            target: target.into(),
            ok: Some(ok),
        }
    }

    /// A supporting figure without a target.
    pub fn info(figure: impl Into<String>, measured: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            measured: measured.into(),
            target: String::new(),
            ok: None,
        }
    }
}

/// The result of one benchmark.
#[derive(Debug, Clone)]
pub struct Section {
    /// Stable id, used in the BENCHMARKS.md markers (`get-latency`).
    pub id: &'static str,
    /// Heading in BENCHMARKS.md.
    pub title: String,
    /// Table rows.
    pub rows: Vec<Row>,
    /// How it was measured, as bullet points.
    pub notes: Vec<String>,
}

impl Section {
    /// Whether any target of the section was missed.
    pub fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.ok == Some(false)).count()
    }
}

/// Where and how a run happened.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `date -u` style timestamp.
    pub date: String,
    /// CPUs, model, memory, kernel, Postgres.
    pub machine: String,
    /// The command line that produced the figures.
    pub command: String,
}

impl RunInfo {
    /// Describes the current machine; `postgres` is the server version string and
    /// `idle_before` the idle fraction of the CPUs measured just before (see [`cpu_idle`]).
    pub fn collect(command: String, postgres: &str, idle_before: Option<f64>) -> RunInfo {
        let date = chrono::Utc::now()
            .format("%a %b %e %H:%M:%S UTC %Y")
            .to_string();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let idle = idle_before
            .map(|f| format!("; {:.0} % idle just before the run", f * 100.0))
            .unwrap_or_default();
        let machine = format!(
            "{cpus} CPUs ({model}), {:.1} GiB RAM, {kernel}, {postgres}{idle}",
            mem_kib / 1024.0 / 1024.0
        );
        RunInfo {
            date,
            machine,
            command,
        }
    }
}

/// The fraction of CPU time the whole machine spent idle during `window`, from
/// `/proc/stat`; `None` where that is unreadable. Shows whether something else was busy.
pub async fn cpu_idle(window: std::time::Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((total, idle))
    }
    let (t0, i0) = sample()?;
    tokio::time::sleep(window).await;
    let (t1, i1) = sample()?;
    let dt = t1.checked_sub(t0).filter(|d| *d > 0)?;
    Some(i1.saturating_sub(i0) as f64 / dt as f64)
}

fn ok_cell(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

/// A Markdown table of `rows`, columns padded so it also reads well in a terminal.
pub fn table<'a>(rows: impl IntoIterator<Item = &'a Row>) -> String {
    let header = ["figure", "measured", "target", "ok"];
    let mut cells: Vec<[String; 4]> = vec![header.map(String::from)];
    for r in rows {
        cells.push([
            escape(&r.figure),
            escape(&r.measured),
            escape(&r.target),
            ok_cell(r.ok).to_string(),
        ]);
    }
    let mut width = [3usize; 4];
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        out.push('|');
        for (w, c) in width.iter().zip(row) {
            let pad = w - c.chars().count();
            let _ = write!(out, " {c}{} |", " ".repeat(pad));
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for w in width {
                let _ = write!(out, " {} |", "-".repeat(w));
            }
            out.push('\n');
        }
    }
    out
}

/// Prints the run's table and notes to stdout.
pub fn print(run: &RunInfo, sections: &[Section]) {
    println!();
    println!("Cacheplane benchmarks — {}", run.date);
    println!("machine: {}", run.machine);
    println!("command: {}", run.command);
    println!();
    print!("{}", table(sections.iter().flat_map(|s| &s.rows)));
    for s in sections {
        if s.notes.is_empty() {
            continue;
        }
        println!();
        println!("{}:", s.title);
        for n in &s.notes {
            println!("  - {n}");
        }
    }
    let missed: usize = sections.iter().map(Section::missed).sum();
    println!();
    if missed == 0 {
        println!("all targets met");
    } else {
        println!("{missed} target(s) missed");
    }
}

const RESULTS_END: &str = "<!-- bench:results-end -->";

fn begin_marker(id: &str) -> String {
    format!("<!-- bench:begin {id} -->")
}

fn end_marker(id: &str) -> String {
    format!("<!-- bench:end {id} -->")
}

/// The generated block of one section, markers included.
pub fn render_section(run: &RunInfo, s: &Section) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", begin_marker(s.id));
    let _ = writeln!(out, "### {}", s.title);
    out.push('\n');
    let _ = writeln!(out, "- date: {}", run.date);
    let _ = writeln!(out, "- machine: {}", run.machine);
    let _ = writeln!(out, "- command: `{}`", run.command);
    out.push('\n');
    out.push_str(&table(&s.rows));
    if !s.notes.is_empty() {
        out.push('\n');
        for n in &s.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    let _ = writeln!(out, "{}", end_marker(s.id));
    out
}

/// Replaces (or adds) the blocks of `sections` in the Markdown text `doc`.
pub fn merge(doc: &str, run: &RunInfo, sections: &[Section]) -> String {
    let mut doc = doc.to_string();
    for s in sections {
        let block = render_section(run, s);
        let begin = begin_marker(s.id);
        let end = end_marker(s.id);
        let existing = doc.find(&begin).and_then(|b| {
            let e = b + doc[b..].find(&end)? + end.len();
            let e = if doc[e..].starts_with('\n') { e + 1 } else { e };
            Some((b, e))
        });
        match existing {
            Some((b, e)) => doc.replace_range(b..e, &block),
            None => match doc.find(RESULTS_END) {
                Some(at) => doc.insert_str(at, &format!("{block}\n")),
                None => {
                    if !doc.is_empty() && !doc.ends_with("\n\n") {
                        doc.push_str(if doc.ends_with('\n') { "\n" } else { "\n\n" });
                    }
                    doc.push_str(&block);
                }
            },
        }
    }
    doc
}

const NEW_DOC: &str = "# Benchmarks\n\nGenerated by `scripts/bench.sh`.\n\n## Results\n\n<!-- bench:results-end -->\n";

/// Updates the file at `path` (creating it when missing) with the run's sections.
pub fn write_markdown(path: &Path, run: &RunInfo, sections: &[Section]) -> anyhow::Result<()> {
    let doc = match std::fs::read_to_string(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => NEW_DOC.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let updated = merge(&doc, run, sections);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunInfo {
        RunInfo {
            date: "Mon Jan  1 00:00:00 UTC 2030".into(),
            machine: "2 CPUs".into(),
            command: "scripts/bench.sh".into(),
        }
    }

    fn section(id: &'static str, value: &str) -> Section {
        Section {
            id,
            title: format!("title {id}"),
            rows: vec![Row::check("fig | x", value, "< 5 ms", true)],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn blocks_are_added_then_replaced_in_place() {
        let doc = "# B\n\nintro\n\n<!-- bench:results-end -->\n\nmethod\n";
        let once = merge(doc, &run(), &[section("a", "1 ms"), section("b", "2 ms")]);
        assert!(once.find("bench:begin a").unwrap() < once.find("bench:begin b").unwrap());
        assert!(once.find("bench:begin b").unwrap() < once.find(RESULTS_END).unwrap());
        assert!(once.contains("fig \\| x"));
        assert!(once.ends_with("method\n"));
        let twice = merge(&once, &run(), &[section("a", "3 ms")]);
        assert!(twice.contains("3 ms") && !twice.contains("1 ms") && twice.contains("2 ms"));
        assert_eq!(twice.matches("bench:begin a").count(), 1);
        assert!(twice.find("bench:begin a").unwrap() < twice.find("bench:begin b").unwrap());
        assert_eq!(merge(&twice, &run(), &[section("a", "3 ms")]), twice);
    }

    #[test]
    fn blocks_go_to_the_end_without_the_results_marker() {
        let out = merge("# B\n", &run(), &[section("a", "1 ms")]);
        assert!(out.starts_with("# B\n\n<!-- bench:begin a -->"));
    }

    #[test]
    fn table_is_padded_markdown() {
        let t = table(&[
            Row::info("x", "1"),
            Row::check("longer figure", "2", "t", false),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
        assert!(lines[3].contains("NO"));
    }
}
