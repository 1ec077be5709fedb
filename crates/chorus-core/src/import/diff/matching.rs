//! Pairing an existing children list with its target: identical subtrees are kept
//! untouched (common ends, then an alignment on hashes, each match confirmed by
//! structural comparison), and in the gaps children of the same kind are paired to
//! be updated in place rather than replaced. Decides only; `splice.rs` acts.

use super::align::{common_ends, lcs};
use super::existing::{ExChild, ExKind, ExNode};
use super::target::{TgKind, TgNode};

/// Whether `ex` renders exactly as `tg` (structurally, not by hash).
fn same(ex: &ExNode, tg: &TgNode<'_>) -> bool {
    if ex.hash != tg.hash {
        return false;
    }
    match (&ex.kind, &tg.kind) {
        (ExKind::Text { merged, .. }, TgKind::Text { runs }) => merged == runs,
        (
            ExKind::Element {
                tag,
                attrs,
                children,
                void,
                ..
            },
            TgKind::Element {
                key,
                attrs: tg_attrs,
                children: tg_children,
                ..
            },
        ) => {
            if tag != key || attrs != tg_attrs {
                return false;
            }
            if *void {
                return true;
            }
            let mut visible = children.iter().filter(|c| c.is_visible());
            for tg_child in tg_children {
                match visible.next().and_then(|c| c.node.as_ref()) {
                    Some(ex_child) if same(ex_child, tg_child) => {}
                    _ => return false,
                }
            }
            visible.next().is_none()
        }
        _ => false,
    }
}

/// What can be updated in place into what: same tag, or text into text.
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
enum Kind<'a> {
    Text,
    Element(&'a str),
}

fn ex_kind(node: &ExNode) -> Kind<'_> {
    match &node.kind {
        ExKind::Text { .. } => Kind::Text,
        ExKind::Element { tag, .. } => Kind::Element(tag),
    }
}

fn tg_kind<'a>(node: &'a TgNode<'_>) -> Kind<'a> {
    match &node.kind {
        TgKind::Text { .. } => Kind::Text,
        TgKind::Element { key, .. } => Kind::Element(key),
    }
}

/// How an existing child relates to the target.
#[derive(Clone, Copy)]
pub(super) enum Pair {
    /// Renders exactly as target `j`: not touched.
    Keep(usize),
    /// Same tag (or both texts) as target `j`: updated in place.
    Update(usize),
}

/// Pairs each existing child with a target (or none), in order.
pub(super) fn match_children(existing: &[ExChild], target: &[TgNode<'_>]) -> Vec<Option<Pair>> {
    let mut result: Vec<Option<Pair>> = vec![None; existing.len()];
    // The children that can be paired at all, with their index in `existing`.
    let cand: Vec<(usize, &ExNode)> = existing
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.node.as_ref().map(|n| (i, n)))
        .collect();

    // 1. Identical subtrees: common prefix and suffix, then an LCS on hashes in the
    //    middle, each match confirmed structurally.
    let (prefix, suffix) = common_ends(&cand, target, |(_, n), t| same(n, t));
    let mut kept: Vec<(usize, usize)> = (0..prefix).map(|k| (k, k)).collect();
    let (c_end, t_end) = (cand.len() - suffix, target.len() - suffix);
    let c_hashes: Vec<u64> = cand[prefix..c_end].iter().map(|(_, n)| n.hash).collect();
    let t_hashes: Vec<u64> = target[prefix..t_end].iter().map(|t| t.hash).collect();
    for (ci, tj) in lcs(&c_hashes, &t_hashes) {
        let (c, t) = (prefix + ci, prefix + tj);
        if same(cand[c].1, &target[t]) {
            kept.push((c, t));
        }
    }
    kept.extend((0..suffix).map(|k| (c_end + k, t_end + k)));

    // 2. In each gap between kept pairs, pair children of the same kind for an update
    //    in place (again an LCS, on the kind), so that a changed paragraph is edited
    //    rather than replaced.
    let mut bounds = kept.clone();
    bounds.push((cand.len(), target.len()));
    let (mut c0, mut t0) = (0, 0);
    for (c1, t1) in bounds {
        if c1 > c0 && t1 > t0 {
            let c_kinds: Vec<Kind<'_>> = cand[c0..c1].iter().map(|(_, n)| ex_kind(n)).collect();
            let t_kinds: Vec<Kind<'_>> = target[t0..t1].iter().map(tg_kind).collect();
            for (ci, tj) in lcs(&c_kinds, &t_kinds) {
                result[cand[c0 + ci].0] = Some(Pair::Update(t0 + tj));
            }
        }
        c0 = c1 + 1;
        t0 = t1 + 1;
    }
    for (c, t) in kept {
        result[cand[c].0] = Some(Pair::Keep(t));
    }
    result
}
