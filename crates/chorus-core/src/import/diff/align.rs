//! A longest common subsequence of two sequences of keys, as increasing index
//! pairs, bounded in time and memory for any input: a full table for small
//! middles, Myers' O(ND) for few edits, patience matching otherwise
//! ([`lcs`]); and the common prefix and suffix ([`common_ends`]). Generic: it knows
//! nothing of documents, and its tests check it on plain sequences.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Up to this many cells (existing × target children left after trimming the common
/// prefix and suffix) the LCS is computed with a full table (2^20 cells of `u16` is
/// 2 MiB). External changes touch a few children, so real middles are tiny.
const LCS_MAX_CELLS: usize = 1 << 20;

/// Above [`LCS_MAX_CELLS`], Myers' algorithm finds the LCS in O((n + m) · D) when the
/// lists differ by at most this many insertions and deletions (its history takes
/// about D² words); beyond that, a greedy in-order match is used.
const MYERS_MAX_EDITS: usize = 512;

/// Lengths of the common prefix and suffix of `a` and `b` (not overlapping).
pub(super) fn common_ends<T, U>(a: &[T], b: &[U], eq: impl Fn(&T, &U) -> bool) -> (usize, usize) {
    let max = a.len().min(b.len());
    let prefix = a.iter().zip(b).take_while(|(x, y)| eq(x, y)).count();
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max - prefix)
        .take_while(|(x, y)| eq(x, y))
        .count();
    (prefix, suffix)
}

/// A longest common subsequence of `a` and `b`, as increasing index pairs.
///
/// Exact: a table of suffix LCS lengths up to [`LCS_MAX_CELLS`], else Myers' algorithm
/// up to [`MYERS_MAX_EDITS`]. For lists that are both long and very different,
/// [`patience`] matching: not always the longest, always valid, and it still keeps
/// every child that only moved relative to a few others in place.
pub(super) fn lcs<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    exact_lcs(a, b).unwrap_or_else(|| patience(a, b))
}

/// The exact tiers of [`lcs`]: `None` when the lists are too long and too
/// different for either bound.
fn exact_lcs<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Option<Vec<(usize, usize)>> {
    if a.is_empty() || b.is_empty() {
        return Some(Vec::new());
    }
    if a.len().saturating_mul(b.len()) <= LCS_MAX_CELLS {
        return Some(lcs_table(a, b));
    }
    myers(a, b, MYERS_MAX_EDITS)
}

/// The bounded tiers of [`lcs`], then a greedy in-order match (each `b` takes the
/// first unused equal `a` after the previous match), which is linear.
fn lcs_bounded<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    if let Some(pairs) = exact_lcs(a, b) {
        return pairs;
    }
    let mut pairs = Vec::new();
    let mut positions: HashMap<K, VecDeque<usize>> = HashMap::new();
    for (i, k) in a.iter().enumerate() {
        positions.entry(*k).or_default().push_back(i);
    }
    let mut next = 0;
    for (j, k) in b.iter().enumerate() {
        if let Some(queue) = positions.get_mut(k) {
            while queue.front().is_some_and(|&i| i < next) {
                queue.pop_front();
            }
            if let Some(i) = queue.pop_front() {
                pairs.push((i, j));
                next = i + 1;
            }
        }
    }
    pairs
}

/// Patience matching: the keys that occur exactly once in each list are paired, the
/// longest sequence of those pairs that is in order in both lists becomes the anchors,
/// and the gaps between anchors are matched with [`lcs_bounded`]. O(n log n) plus the
/// gaps.
fn patience<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    // key → (count in a, index in a, count in b, index in b)
    let mut seen: HashMap<K, (u32, usize, u32, usize)> = HashMap::new();
    for (i, k) in a.iter().enumerate() {
        let entry = seen.entry(*k).or_insert((0, i, 0, 0));
        entry.0 += 1;
    }
    for (j, k) in b.iter().enumerate() {
        if let Some(entry) = seen.get_mut(k) {
            entry.2 += 1;
            entry.3 = j;
        }
    }
    let mut unique: Vec<(usize, usize)> = seen
        .values()
        .filter(|e| e.0 == 1 && e.2 == 1)
        .map(|e| (e.1, e.3))
        .collect();
    unique.sort_unstable_by_key(|&(_, j)| j);
    let anchors = increasing_in_a(&unique);

    let mut pairs = Vec::new();
    let (mut i0, mut j0) = (0, 0);
    for &(i, j) in &anchors {
        pairs.extend(
            lcs_bounded(&a[i0..i], &b[j0..j])
                .into_iter()
                .map(|(gi, gj)| (i0 + gi, j0 + gj)),
        );
        pairs.push((i, j));
        (i0, j0) = (i + 1, j + 1);
    }
    pairs.extend(
        lcs_bounded(&a[i0..], &b[j0..])
            .into_iter()
            .map(|(gi, gj)| (i0 + gi, j0 + gj)),
    );
    pairs
}

/// The longest subsequence of `pairs` (sorted by their second index) whose first
/// indices increase too (patience sorting, O(k log k)).
fn increasing_in_a(pairs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    // tails[l]: the pair ending the best subsequence of length l + 1 found so far.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(i, _)) in pairs.iter().enumerate() {
        let len = tails.partition_point(|&t| pairs[t].0 < i);
        if len > 0 {
            prev[p] = Some(tails[len - 1]);
        }
        if len == tails.len() {
            tails.push(p);
        } else {
            tails[len] = p;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(p) = cur {
        out.push(pairs[p]);
        cur = prev[p];
    }
    out.reverse();
    out
}

/// The LCS from a full table; `n · m` must be at most [`LCS_MAX_CELLS`].
fn lcs_table<K: Eq>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // len[i * (m + 1) + j] = LCS length of a[i..] and b[j..]; it never exceeds
    // min(n, m) ≤ 1024 here, so u16 is enough.
    let w = m + 1;
    let mut len = vec![0u16; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i * w + j] = if a[i] == b[j] {
                len[(i + 1) * w + j + 1] + 1
            } else {
                len[(i + 1) * w + j].max(len[i * w + j + 1])
            };
        }
    }
    // Walk forward; on a tie skip the existing child first, so that an inserted
    // child is paired with nothing rather than shifting its equal neighbours.
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if len[(i + 1) * w + j] >= len[i * w + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Myers' greedy shortest-edit-script algorithm: the LCS of `a` and `b` as index
/// pairs, or `None` if more than `max_d` insertions and deletions separate them.
fn myers<K: Eq>(a: &[K], b: &[K], max_d: usize) -> Option<Vec<(usize, usize)>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = max_d.min(a.len() + b.len()) as isize;
    let off = max_d + 1;
    let idx = |k: isize| (k + off) as usize;
    // v[idx(k)]: the furthest x reached on diagonal k = x - y.
    let mut v = vec![0isize; (2 * max_d + 3) as usize];
    // history[d]: v for diagonals -d..=d after round d.
    let mut history: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max_d {
        for k in (-d..=d).step_by(2) {
            let down = k == -d || (k != d && v[idx(k - 1)] < v[idx(k + 1)]);
            let mut x = if down {
                v[idx(k + 1)]
            } else {
                v[idx(k - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx(k)] = x;
            if x >= n && y >= m {
                history.push(v[idx(-d)..=idx(d)].to_vec());
                return Some(myers_path(n, m, &history));
            }
        }
        history.push(v[idx(-d)..=idx(d)].to_vec());
    }
    None
}

/// Walks Myers' history back from (n, m), collecting the diagonal moves (matches).
fn myers_path(n: isize, m: isize, history: &[Vec<isize>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..history.len() as isize).rev() {
        let prev = &history[(d - 1) as usize];
        let at = |k: isize| prev[(k + d - 1) as usize];
        let k = x - y;
        let down = k == -d || (k != d && at(k - 1) < at(k + 1));
        let prev_k = if down { k + 1 } else { k - 1 };
        let prev_x = at(prev_k);
        // Round d's edit lands here; the snake after it is made of matches.
        let start_x = if down { prev_x } else { prev_x + 1 };
        while x > start_x {
            x -= 1;
            y -= 1;
            pairs.push((x as usize, y as usize));
        }
        x = prev_x;
        y = prev_x - prev_k;
    }
    // Round 0: the common prefix.
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        pairs.push((x as usize, y as usize));
    }
    pairs.reverse();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random sequences over a small alphabet (many repeats).
    fn sequence(seed: &mut u64, len: usize, alphabet: u64) -> Vec<u64> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*seed >> 33) % alphabet
            })
            .collect()
    }

    fn assert_valid(a: &[u64], b: &[u64], pairs: &[(usize, usize)]) {
        for w in pairs.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "not increasing: {w:?}");
        }
        for &(i, j) in pairs {
            assert_eq!(a[i], b[j]);
        }
    }

    #[test]
    fn myers_and_patience_agree_with_the_table() {
        let mut seed = 42;
        for round in 0..300 {
            let alphabet = 2 + round as u64 % 7;
            let a = sequence(&mut seed, (round * 7) % 60, alphabet);
            let mut b = a.clone();
            // A few edits, so that Myers stays within its bound.
            for _ in 0..(round % 9) {
                let r = sequence(&mut seed, 2, 1000);
                let at = if b.is_empty() {
                    0
                } else {
                    r[0] as usize % b.len()
                };
                if r[1] & 1 == 0 && !b.is_empty() {
                    b.remove(at);
                } else {
                    b.insert(at, r[1] % alphabet);
                }
            }
            let table = lcs_table(&a, &b);
            assert_valid(&a, &b, &table);
            let myers = myers(&a, &b, a.len() + b.len()).unwrap();
            assert_valid(&a, &b, &myers);
            assert_eq!(myers.len(), table.len(), "{a:?} {b:?}");
            assert_valid(&a, &b, &patience(&a, &b));
        }
        // Beyond its bound Myers gives up rather than guess.
        assert!(myers(&[1u64, 2, 3], &[4, 5, 6], 2).is_none());
    }

    #[test]
    fn common_ends_do_not_overlap() {
        assert_eq!(common_ends(b"aXa", b"aa", |x, y| x == y), (1, 1));
        assert_eq!(common_ends(b"aaa", b"aa", |x, y| x == y), (2, 0));
        assert_eq!(common_ends(b"", b"a", |x, y| x == y), (0, 0));
    }
}
