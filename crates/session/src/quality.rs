//! A link's quality level from its measured statistics, for the UI's signal bars.

/// What was measured on one link over the last interval. `None` = not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkMeasure {
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    /// Percentage of packets lost, 0..=100.
    pub loss_pct: Option<f64>,
    /// Frames per second of received video, when video is expected.
    pub video_fps: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Poor,
    Fair,
    Good,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Fair => "fair",
            Quality::Poor => "poor",
        }
    }
}

/// Thresholds in the spirit of ITU-T G.114 and common conferencing practice: under 150 ms RTT,
/// 1% loss and 20 ms jitter is good; past 400 ms, 5% or 50 ms a call is poor.
pub fn quality(m: &LinkMeasure) -> Quality {
    let mut q = Quality::Good;
    let mut worsen = |value: Option<f64>, fair: f64, poor: f64| {
        if let Some(v) = value {
            let level = if v > poor {
                Quality::Poor
            } else if v > fair {
                Quality::Fair
            } else {
                Quality::Good
            };
            q = q.min(level);
        }
    };
    worsen(m.rtt_ms, 150.0, 400.0);
    worsen(m.loss_pct, 1.0, 5.0);
    worsen(m.jitter_ms, 20.0, 50.0);
    // Fewer frames is worse: negate to reuse the "higher is worse" thresholds.
    worsen(m.video_fps.map(|f| -f), -20.0, -10.0);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(quality(&LinkMeasure::default()), Quality::Good);
        let good = LinkMeasure {
            rtt_ms: Some(20.0),
            jitter_ms: Some(2.0),
            loss_pct: Some(0.0),
            video_fps: Some(30.0),
        };
        assert_eq!(quality(&good), Quality::Good);
        assert_eq!(quality(&LinkMeasure { loss_pct: Some(2.0), ..good }), Quality::Fair);
        assert_eq!(quality(&LinkMeasure { rtt_ms: Some(500.0), ..good }), Quality::Poor);
        assert_eq!(quality(&LinkMeasure { video_fps: Some(15.0), ..good }), Quality::Fair);
        assert_eq!(
            quality(&LinkMeasure { video_fps: Some(5.0), jitter_ms: Some(30.0), ..good }),
            Quality::Poor
        );
    }
}
