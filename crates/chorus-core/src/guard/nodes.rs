//! Small facts about a document's nodes that every part of the guard asks: the
//! branch behind a shared value, a node's XML parent, and a string's length as Yjs
//! counts it (UTF-16 units). Reads only; no policy here.

use yrs::branch::{Branch, BranchPtr};
use yrs::{Out, Xml, XmlOut};

/// The parent of a node, if it is an XML node (yrs exposes a node's parent only
/// through [`Xml::parent`], whose default works for any branch).
pub(super) fn parent_of(branch: BranchPtr) -> Option<BranchPtr> {
    struct Node(BranchPtr);
    impl AsRef<Branch> for Node {
        fn as_ref(&self) -> &Branch {
            &self.0
        }
    }
    impl Xml for Node {}
    Some(match Node(branch).parent()? {
        XmlOut::Element(e) => ptr(&e),
        XmlOut::Fragment(f) => ptr(&f),
        XmlOut::Text(t) => ptr(&t),
    })
}

pub(super) fn ptr<T: AsRef<Branch>>(shared: &T) -> BranchPtr {
    BranchPtr::from(AsRef::<Branch>::as_ref(shared))
}

pub(super) fn branch_of(out: &Out) -> Option<BranchPtr> {
    Some(match out {
        Out::YText(t) => ptr(t),
        Out::YArray(a) => ptr(a),
        Out::YMap(m) => ptr(m),
        Out::YXmlElement(e) => ptr(e),
        Out::YXmlFragment(f) => ptr(f),
        Out::YXmlText(t) => ptr(t),
        Out::UndefinedRef(b) => *b,
        _ => return None,
    })
}

/// Length of a string in UTF-16 code units (ASCII, the common case, without a scan
/// in this crate's code: text can be megabytes).
pub(super) fn utf16_len(s: &str) -> u32 {
    if s.is_ascii() {
        s.len() as u32
    } else {
        s.encode_utf16().count() as u32
    }
}
