//! Detection: which profile fits a header.
//!
//! A profile is a candidate when every `required` column is present and, if it lists `any`
//! columns, at least one of those. Its score is the share of the file's columns it knows
//! (detection lists plus mapped columns), times its `weight`; it is proposed when the score
//! reaches its `min_score`. The best score wins; ties go to the profile that knows more
//! columns, then to the earlier built-in profile. Columns named `column_N` (blank header
//! cells) and `name_2`, `name_3`, … repeats of a present `name` do not count.

use std::collections::HashSet;

use super::spec::{Column, norm};
use super::{Profile, builtin};

/// How well a profile fits a header.
#[derive(Debug, Clone)]
pub struct Detection {
    pub profile: &'static Profile,
    /// Share of the file's columns the profile knows, times the profile's weight (0 to 1).
    pub score: f32,
    /// The file's columns the profile knows, as written in the header.
    pub matched: Vec<String>,
    /// Columns of the profile's signature (`required` and `optional`, without `{n}` patterns)
    /// that the file lacks. For a candidate this never holds a required column.
    pub missing: Vec<String>,
    /// The file's columns the profile does not know (they stay in the raw row only).
    pub unknown: Vec<String>,
}

/// The best-matching built-in profile for a header; `None` when no profile fits well enough.
pub fn detect(header: &[String]) -> Option<Detection> {
    detect_all(header).into_iter().next()
}

/// Every built-in profile that fits the header, best first.
pub fn detect_all(header: &[String]) -> Vec<Detection> {
    let mut found: Vec<(usize, Detection)> = builtin()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.score_header(header).filter(|d| d.score >= p.detect.min_score).map(|d| (i, d)))
        .collect();
    found.sort_by(|(ia, a), (ib, b)| {
        b.score.total_cmp(&a.score).then(b.matched.len().cmp(&a.matched.len())).then(ia.cmp(ib))
    });
    found.into_iter().map(|(_, d)| d).collect()
}

impl Profile {
    /// Scores this profile against a header, ignoring its threshold; `None` when a required
    /// column (or every `any` column) is absent. Useful to explain a forced profile's fit.
    pub fn score_header(&'static self, header: &[String]) -> Option<Detection> {
        let columns = effective_columns(header);
        let present: HashSet<&str> = columns.iter().map(|(_, n)| n.as_str()).collect();
        let has = |c: &Column| present.iter().any(|k| c.matches(k).is_some());
        let spec = &self.detect;
        if !spec.required.iter().all(has) || (!spec.any.is_empty() && !spec.any.iter().any(has)) {
            return None;
        }
        let (mut matched, mut unknown) = (Vec::new(), Vec::new());
        for (raw, n) in &columns {
            if spec.known.iter().any(|c| c.matches(n).is_some()) {
                matched.push(raw.clone());
            } else {
                unknown.push(raw.clone());
            }
        }
        let missing = spec
            .required
            .iter()
            .chain(&spec.optional)
            .filter(|c| c.literal().is_some_and(|l| !present.contains(l)))
            .map(|c| c.raw.clone())
            .collect();
        let coverage = if columns.is_empty() { 0.0 } else { matched.len() as f32 / columns.len() as f32 };
        Some(Detection { profile: self, score: coverage * spec.weight, matched, missing, unknown })
    }
}

/// (as written, normalised) for the header columns that count.
fn effective_columns(header: &[String]) -> Vec<(String, String)> {
    let normalised: Vec<String> = header.iter().map(|h| norm(h)).collect();
    let all: HashSet<&str> = normalised.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    header
        .iter()
        .zip(&normalised)
        .enumerate()
        .filter(|(i, (raw, n))| {
            let blank = **raw == format!("column_{}", i + 1) || n.is_empty();
            let repeat = n
                .rsplit_once('_')
                .is_some_and(|(base, k)| k.parse::<u32>().is_ok_and(|k| k >= 2) && all.contains(base));
            !blank && !repeat && seen.insert(n.as_str())
        })
        .map(|(_, (raw, n))| (raw.clone(), n.clone()))
        .collect()
}
