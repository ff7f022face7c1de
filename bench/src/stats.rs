//! Latency samples and their percentiles.

use std::time::Duration;

/// A set of durations, sorted once for percentile queries.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Sorts `samples` for the queries below.
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort_unstable();
        Samples { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `q`-quantile (0.0–1.0) by the nearest-rank method; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q.clamp(0.0, 1.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// The largest sample; zero when empty.
    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
}

/// The median of a slice of durations (the lower middle for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut v = samples.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// `d` in milliseconds, for tables.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// A count with thin spacing as thousands separators (`10 000`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or_default())
        .collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let s = Samples::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.quantile(0.5), Duration::from_millis(50));
        assert_eq!(s.quantile(0.99), Duration::from_millis(99));
        assert_eq!(s.quantile(0.0), Duration::from_millis(1));
        assert_eq!(s.max(), Duration::from_millis(100));
        assert_eq!(Samples::default().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn medians_and_formatting() {
        let d = |v: &[u64]| {
            v.iter()
                .map(|&x| Duration::from_millis(x))
                .collect::<Vec<_>>()
        };
        assert_eq!(median(&d(&[3, 1, 2])), Duration::from_millis(2));
        assert_eq!(median(&d(&[4, 1, 3, 2])), Duration::from_millis(2));
        assert_eq!(count(10_000), "10 000");
        assert_eq!(count(512), "512");
        assert_eq!(count(1_234_567), "1 234 567");
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
    }
}
