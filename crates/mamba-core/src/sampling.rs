//! Token sampling: greedy, temperature, top-k, top-p, min-p and repetition penalty, with a
//! seeded RNG that needs no `std`.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::error::Error;

/// Sampling settings. The defaults match llama.cpp's command-line defaults except the seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; `0` or below picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability sum reaches `top_p`;
    /// `1.0` keeps all.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the top probability; `0` keeps all.
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this; `1.0` is off.
    pub repetition_penalty: f32,
    /// How many of the most recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// Settings that always pick the most likely token.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }
}

/// xorshift64* generator seeded through SplitMix64: small, fast, and identical on every target.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// Creates a generator; every seed, zero included, gives a valid non-zero state.
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self { state: if z == 0 { 0x2545_f491_4f6c_dd1d } else { z } }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform float in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

/// A candidate token and its logit, later its probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Logit, or probability after the softmax.
    pub value: f32,
}

/// Picks the index of the largest finite logit; ties go to the lowest id, as `argmax` in
/// PyTorch and NumPy does. Returns 0 for an empty or all-NaN slice.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

/// Samples tokens from logits with fixed settings and its own RNG.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    #[cfg(feature = "alloc")]
    candidates: Vec<Candidate>,
}

impl Sampler {
    /// Creates a sampler seeded with `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Self {
            params,
            rng: Rng::new(params.seed),
            #[cfg(feature = "alloc")]
            candidates: Vec::new(),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Picks the next token. `history` contains the tokens so far (prompt and output) for the
    /// repetition penalty.
    #[cfg(feature = "alloc")]
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut candidates = core::mem::take(&mut self.candidates);
        candidates.resize(logits.len(), Candidate { id: 0, value: 0.0 });
        let token = self.sample_with(logits, history, &mut candidates);
        self.candidates = candidates;
        token
    }

    /// Picks the next token using `work` (at least `logits.len()` long) as candidate storage.
    /// With a shorter `work`, only token ids below `work.len()` are considered.
    pub fn sample_with(&mut self, logits: &[f32], history: &[u32], work: &mut [Candidate]) -> u32 {
        let p = self.params;
        let n = logits.len().min(work.len());
        if n == 0 {
            return 0;
        }

        // Repetition penalty on the recent tokens, applied to a copy of the logits.
        let candidates = &mut work[..n];
        for (i, slot) in candidates.iter_mut().enumerate() {
            *slot = Candidate { id: i as u32, value: logits[i] };
        }
        if p.repetition_penalty != 1.0 && p.repetition_penalty > 0.0 {
            let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
            for (i, slot) in candidates.iter_mut().enumerate() {
                if recent.contains(&(i as u32)) {
                    slot.value = if slot.value > 0.0 {
                        slot.value / p.repetition_penalty
                    } else {
                        slot.value * p.repetition_penalty
                    };
                }
            }
        }
        for slot in candidates.iter_mut() {
            if slot.value.is_nan() {
                slot.value = f32::NEG_INFINITY;
            }
        }

        // Greedy.
        if p.temperature <= 0.0 {
            let mut best = candidates[0];
            for &cand in candidates.iter() {
                if cand.value > best.value {
                    best = cand;
                }
            }
            return best.id;
        }

        // Sort descending by logit, ties by ascending id so the order is deterministic, then top-k.
        candidates.sort_unstable_by(rank);
        let len = if p.top_k == 0 { n } else { p.top_k.min(n) };
        self.draw(&mut candidates[..len])
    }

    /// Picks the next token like [`Sampler::sample`], keeping the top-k candidates in a
    /// fixed array of `K` entries instead of a vocabulary-sized buffer, so it needs no
    /// allocator and `K * 8` bytes of stack. It gives the same token as [`Sampler::sample`]
    /// with the same settings, history and RNG state.
    ///
    /// # Errors
    /// - [`Error::EmptyInput`] when `logits` is empty.
    /// - [`Error::BufferTooSmall`] naming the top-k candidates when the temperature is
    ///   positive and `top_k` is 0 or larger than `K`. Greedy sampling works with any `K`.
    pub fn sample_fixed<const K: usize>(&mut self, logits: &[f32], history: &[u32]) -> Result<u32, Error> {
        let p = self.params;
        let n = logits.len();
        if n == 0 {
            return Err(Error::EmptyInput);
        }
        let penalised = |i: usize| -> Candidate {
            let mut value = logits[i];
            if p.repetition_penalty != 1.0 && p.repetition_penalty > 0.0 {
                let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
                if recent.contains(&(i as u32)) {
                    value = if value > 0.0 { value / p.repetition_penalty } else { value * p.repetition_penalty };
                }
            }
            if value.is_nan() {
                value = f32::NEG_INFINITY;
            }
            Candidate { id: i as u32, value }
        };

        // Greedy: the first of the largest values, as `sample` picks it.
        if p.temperature <= 0.0 {
            let mut best = penalised(0);
            for i in 1..n {
                let cand = penalised(i);
                if cand.value > best.value {
                    best = cand;
                }
            }
            return Ok(best.id);
        }

        let k = if p.top_k == 0 { n } else { p.top_k.min(n) };
        if k > K {
            let bytes = core::mem::size_of::<Candidate>();
            return Err(Error::BufferTooSmall { buffer: "top-k candidates", needed: k * bytes, found: K * bytes });
        }

        // Keep the k best in `rank` order by insertion; ties keep the lower id first.
        let mut top = heapless::Vec::<Candidate, K>::new();
        for i in 0..n {
            let cand = penalised(i);
            if top.len() == k {
                match top.last() {
                    Some(last) if rank(&cand, last).is_lt() => {
                        top.pop();
                    }
                    _ => continue,
                }
            }
            let at = top.partition_point(|c| rank(c, &cand).is_le());
            // `top` contains fewer than k <= K entries here, so the insert succeeds.
            let _ = top.insert(at, cand);
        }
        Ok(self.draw(&mut top))
    }

    /// Draws a token from `candidates`, the top-k logits in [`rank`] order: temperature
    /// softmax, then the top-p and min-p cuts, then one RNG draw.
    fn draw(&mut self, candidates: &mut [Candidate]) -> u32 {
        let p = self.params;
        let mut len = candidates.len();

        // Softmax with temperature over the kept candidates.
        let max = candidates[0].value;
        let mut sum = 0.0f32;
        for cand in candidates[..len].iter_mut() {
            cand.value = libm::expf((cand.value - max) / p.temperature);
            sum += cand.value;
        }
        for cand in candidates[..len].iter_mut() {
            cand.value /= sum;
        }

        // Top-p: the shortest prefix whose mass reaches top_p.
        if p.top_p < 1.0 {
            let mut mass = 0.0f32;
            for (i, cand) in candidates[..len].iter().enumerate() {
                mass += cand.value;
                if mass >= p.top_p {
                    len = i + 1;
                    break;
                }
            }
        }

        // Min-p relative to the most likely token.
        if p.min_p > 0.0 {
            let threshold = p.min_p * candidates[0].value;
            len = candidates[..len].iter().take_while(|c| c.value >= threshold).count().max(1);
        }

        // Draw from the renormalised distribution.
        let total: f32 = candidates[..len].iter().map(|c| c.value).sum();
        let mut r = self.rng.next_f32() * total;
        for cand in &candidates[..len] {
            if r < cand.value {
                return cand.id;
            }
            r -= cand.value;
        }
        candidates[len - 1].id
    }
}

/// Orders candidates by descending value, ties by ascending id, so sorting is deterministic.
fn rank(a: &Candidate, b: &Candidate) -> core::cmp::Ordering {
    b.value.total_cmp(&a.value).then(a.id.cmp(&b.id))
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_max_and_lowest_tie() {
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0], &[]), 1);
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let params = SamplerParams { temperature: 1.5, top_k: 1, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        for _ in 0..50 {
            assert_eq!(s.sample(&[0.0, 1.0, 5.0, 2.0], &[]), 2);
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let params = SamplerParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 42, ..SamplerParams::default() };
        let logits: [f32; 8] = [0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.0, 0.4];
        let mut a = Sampler::new(params);
        let mut b = Sampler::new(params);
        for _ in 0..100 {
            assert_eq!(a.sample(&logits, &[]), b.sample(&logits, &[]));
        }
    }

    #[test]
    fn sampling_follows_probabilities() {
        // Two tokens with probabilities 0.2 and 0.8 at temperature 1.
        let logits = [0.0f32, 4.0f32.ln()];
        let params = SamplerParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 7, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        let ones = (0..10_000).filter(|_| s.sample(&logits, &[]) == 1).count();
        assert!((7_600..8_400).contains(&ones), "token 1 drawn {ones} times of 10000");
    }

    #[test]
    fn repetition_penalty_demotes_seen_token() {
        let params = SamplerParams { temperature: 0.0, repetition_penalty: 2.0, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        assert_eq!(s.sample(&[3.0, 2.0], &[0]), 1);
        assert_eq!(s.sample(&[3.0, 2.0], &[1]), 0);
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        // top_p 0.5 keeps only the dominant token.
        let params = SamplerParams { temperature: 1.0, top_k: 0, top_p: 0.5, min_p: 0.0, seed: 3, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        for _ in 0..100 {
            assert_eq!(s.sample(&[10.0, 0.0, 0.0], &[]), 0);
        }
        let params = SamplerParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.5, seed: 3, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        for _ in 0..100 {
            assert_ne!(s.sample(&[10.0, 0.0, 9.0], &[]), 1);
        }
    }

    #[test]
    fn fixed_top_k_matches_sample() {
        let mut rng = Rng::new(11);
        for case in 0..200u64 {
            let n = 1 + (rng.next_u64() % 300) as usize;
            // Coarse values make ties common, so the tie order is exercised too.
            let logits: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 16) as f32 * 0.5 - 4.0).collect();
            let history: Vec<u32> = (0..20).map(|_| (rng.next_u64() % n as u64) as u32).collect();
            let params = SamplerParams {
                temperature: if case % 5 == 0 { 0.0 } else { 0.3 + (case % 7) as f32 * 0.2 },
                top_k: 1 + (case % 40) as usize,
                top_p: if case % 3 == 0 { 1.0 } else { 0.9 },
                min_p: if case % 2 == 0 { 0.0 } else { 0.05 },
                repetition_penalty: if case % 4 == 0 { 1.3 } else { 1.0 },
                repeat_last_n: 16,
                seed: case,
            };
            let mut full = Sampler::new(params);
            let mut fixed = Sampler::new(params);
            for step in 0..5 {
                let expected = full.sample(&logits, &history);
                let found = fixed.sample_fixed::<40>(&logits, &history);
                assert_eq!(found, Ok(expected), "case {case}, step {step}, n {n}, params {params:?}");
            }
        }
    }

    #[test]
    fn fixed_rejects_top_k_above_capacity() {
        let params = SamplerParams { temperature: 1.0, top_k: 50, ..SamplerParams::default() };
        let mut s = Sampler::new(params);
        let logits = [0.0f32; 100];
        let err = s.sample_fixed::<40>(&logits, &[]);
        assert_eq!(err, Err(Error::BufferTooSmall { buffer: "top-k candidates", needed: 400, found: 320 }));
        let all = SamplerParams { top_k: 0, ..params };
        let err = Sampler::new(all).sample_fixed::<40>(&logits, &[]);
        assert_eq!(err, Err(Error::BufferTooSmall { buffer: "top-k candidates", needed: 800, found: 320 }));
    }

    #[test]
    fn fixed_greedy_needs_no_capacity() {
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample_fixed::<0>(&[0.1, 3.0, -1.0, 3.0], &[]), Ok(1));
        assert_eq!(s.sample_fixed::<0>(&[], &[]), Err(Error::EmptyInput));
    }

    #[test]
    fn nan_logits_are_never_picked() {
        let mut s = Sampler::new(SamplerParams { temperature: 1.0, seed: 1, ..SamplerParams::default() });
        for _ in 0..100 {
            assert_ne!(s.sample(&[f32::NAN, 0.0, 1.0], &[]), 0);
        }
    }
}
