//! A shard's event time (Flink's `StatusWatermarkValve`): each input (the shard's own
//! producer and one channel per peer) reports watermarks and an idle status, in band
//! with its records. The shard's watermark is the minimum over the inputs that are
//! active; an idle input is left out (an explicit status, not a watermark at the end of
//! time, so it holds nothing back and claims nothing). When the last active input goes
//! idle, the shard's watermark moves to the largest watermark any input has reported
//! (as Flink's valve flushes when every channel is idle), so the outcome does not
//! depend on which input went idle first; then it holds until an input reports again.
//! An input's watermark and the shard's never go backwards.
use super::WATERMARK_MIN;

#[derive(Debug, Clone, Copy)]
struct Input {
    watermark: i64,
    idle: bool,
}

#[derive(Debug, Clone)]
pub struct Valve {
    inputs: Vec<Input>,
    current: i64,
}

impl Valve {
    /// `inputs` inputs, all active, none with a watermark yet.
    pub fn new(inputs: usize) -> Self {
        Valve { inputs: vec![Input { watermark: WATERMARK_MIN, idle: false }; inputs], current: WATERMARK_MIN }
    }

    /// The shard's watermark.
    #[cfg(test)]
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Input `i` reports watermark `w` (and so is active). Returns the shard's new
    /// watermark if it advanced.
    pub fn watermark(&mut self, i: usize, w: i64) -> Option<i64> {
        if let Some(input) = self.inputs.get_mut(i) {
            input.watermark = input.watermark.max(w);
            input.idle = false;
        }
        self.advance()
    }

    /// Input `i` is idle until it next reports a watermark. Returns the shard's new
    /// watermark if it advanced (the idle input was the one holding it back).
    pub fn idle(&mut self, i: usize) -> Option<i64> {
        if let Some(input) = self.inputs.get_mut(i) {
            input.idle = true;
        }
        self.advance()
    }

    fn advance(&mut self) -> Option<i64> {
        let active = self.inputs.iter().filter(|i| !i.idle).map(|i| i.watermark).min();
        let next = match active {
            Some(min) => min,
            None => self.inputs.iter().map(|i| i.watermark).max()?,
        };
        (next > self.current).then(|| {
            self.current = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::END_OF_TIME;

    #[test]
    // Pins the valve's rules: min over active inputs, idle inputs excluded, all idle
    // holds, never backwards, end of time once every input has ended.
    fn min_over_active_inputs() {
        let mut v = Valve::new(3);
        assert_eq!(v.watermark(0, 10), None, "inputs 1 and 2 have no watermark yet");
        assert_eq!(v.watermark(1, 20), None);
        assert_eq!(v.watermark(2, 5), Some(5));
        assert_eq!(v.watermark(2, 30), Some(10), "the minimum moves to input 0");
        assert_eq!(v.watermark(0, 7), None, "an input's watermark never goes back");
        assert_eq!(v.current(), 10);
        assert_eq!(v.idle(0), Some(20), "the idle input no longer holds the shard back");
        assert_eq!(v.idle(1), Some(30));
        assert_eq!(v.idle(2), None, "every input idle: the watermark holds");
        assert_eq!(v.current(), 30);
        assert_eq!(v.watermark(0, 12), None, "an input back from idleness below the shard does not move it back");
        assert_eq!(v.current(), 30);
        assert_eq!(v.watermark(0, 40), Some(40), "input 0 is the only active one");
        assert_eq!(v.watermark(1, END_OF_TIME), None, "input 0 (40) is still the minimum");
        assert_eq!(v.watermark(2, END_OF_TIME), None);
        assert_eq!(v.watermark(0, END_OF_TIME), Some(END_OF_TIME));

        // Whichever input goes idle first, the shard ends at what was reported.
        for first in [0, 1] {
            let mut v = Valve::new(2);
            assert_eq!(v.watermark(0, 50), None, "input 1 has no watermark yet");
            assert_eq!(v.idle(first), if first == 1 { Some(50) } else { None });
            assert_eq!(v.idle(1 - first), if first == 1 { None } else { Some(50) }, "all idle: the largest reported");
            assert_eq!(v.current(), 50);
        }
    }
}
