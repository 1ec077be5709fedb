//! What the guard reports: the kinds of content it neutralises ([`Violation`]), a
//! tally of them ([`Neutralised`]), what a run of transactions came to
//! ([`Verdict`]), and why an update is refused before it is applied
//! ([`UnreadableUpdate`]). Plain values: the room merges them into its metrics and
//! maps them to errors; nothing here looks at a document.

/// The kinds of content the guard neutralises (labels of the metrics counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// An element not in the policy (removed with its subtree).
    Element,
    /// An attribute not allowed on its element, or with a refused value.
    Attribute,
    /// A `style` declaration not in the policy.
    Style,
    /// An inline mark (text formatting) not in the policy, or with a refused attribute.
    Mark,
    /// Non-text content inside text, or a non-XML node in the tree.
    Embed,
    /// Content in a root other than `title` and `body`.
    Root,
}

impl Violation {
    /// Every kind, in a fixed order.
    pub const ALL: [Violation; 6] = [
        Violation::Element,
        Violation::Attribute,
        Violation::Style,
        Violation::Mark,
        Violation::Embed,
        Violation::Root,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::Element => "element",
            Violation::Attribute => "attribute",
            Violation::Style => "style",
            Violation::Mark => "mark",
            Violation::Embed => "embed",
            Violation::Root => "root",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many things of each kind were neutralised.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Neutralised {
    counts: [u64; 6],
}

impl Neutralised {
    /// Count for one kind.
    pub fn count(&self, kind: Violation) -> u64 {
        self.counts[kind.index()]
    }

    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(kind, count)` for every kind with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (Violation, u64)> + '_ {
        Violation::ALL
            .into_iter()
            .map(|k| (k, self.count(k)))
            .filter(|(_, n)| *n > 0)
    }

    /// Add another tally to this one.
    pub fn merge(&mut self, other: &Neutralised) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub(super) fn add(&mut self, kind: Violation) {
        self.counts[kind.index()] += 1;
    }
}

/// What the guard did during the transactions since the last
/// [`Guard::take_verdict`](super::Guard::take_verdict).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What was found outside the policy (and removed).
    pub neutralised: Neutralised,
    /// True if, in reject mode, a transaction was refused as a whole.
    pub rejected: bool,
}

/// An update the guard refuses before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadableUpdate {
    /// It holds a content or node kind a Yjs 13 client cannot decode (yrs' move,
    /// weak link or undefined node): relayed, every stock client would drop it
    /// and diverge.
    NotYjs,
    /// It holds legacy JSON content, which Yjs 13 and yrs read differently.
    Misread,
    /// Its bytes do not read as a v1 update, or it puts what no Yjs client would
    /// where yrs cannot walk it (a map entry longer than one clock, a string with
    /// characters past U+FFFF among nodes).
    Malformed,
}
