//! The whitelist bundle: the content policy, what to do with content outside it
//! ([`WhitelistMode`]), the HTML cleaner built from the same policy, and the editor
//! profile whose names the document uses. Configuration builds one; a room hands it
//! to its guard (in `chorus-core`, which enforces it on CRDT updates and names the
//! version of its own checks in [`Whitelist::conformance`]).

use crate::{EditorProfile, HtmlCleaner, Policy};
use std::sync::{Arc, OnceLock};

/// What the guard does with content outside the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhitelistMode {
    /// Remove the disallowed parts; the allowed rest of the update survives.
    #[default]
    Strip,
    /// Refuse everything the update inserted; the sender must reload.
    Reject,
    /// No checks (benchmarks, trusted deployments).
    Off,
}

impl WhitelistMode {
    /// The configuration spelling (`strip`, `reject`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            WhitelistMode::Strip => "strip",
            WhitelistMode::Reject => "reject",
            WhitelistMode::Off => "off",
        }
    }
}

impl std::str::FromStr for WhitelistMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strip" => Ok(WhitelistMode::Strip),
            "reject" => Ok(WhitelistMode::Reject),
            "off" => Ok(WhitelistMode::Off),
            other => Err(format!(
                "unknown whitelist mode {other:?} (expected strip, reject or off)"
            )),
        }
    }
}

/// A policy, what to do with content outside it, and the HTML sanitiser built from it.
#[derive(Debug, Clone)]
pub struct Whitelist {
    /// The content policy.
    pub policy: Arc<Policy>,
    /// Strip, reject or off.
    pub mode: WhitelistMode,
    /// Cleans rendered HTML with the same policy (belt and braces behind the guard).
    pub html: Arc<HtmlCleaner>,
    /// The names the editor writes, and the HTML each means (`html`: HTML's own).
    pub profile: Arc<EditorProfile>,
}

impl Whitelist {
    /// A whitelist for `policy` (builds its HTML sanitiser once).
    pub fn new(policy: Arc<Policy>, mode: WhitelistMode) -> Self {
        Whitelist {
            html: Arc::new(HtmlCleaner::new(policy.clone())),
            policy,
            mode,
            profile: Arc::new(EditorProfile::html()),
        }
    }

    /// The same whitelist for an editor writing `profile`'s names.
    pub fn with_profile(mut self, profile: Arc<EditorProfile>) -> Self {
        self.profile = profile;
        self
    }

    /// Identifies what content passing this whitelist conforms to, when it is
    /// enforced by checks of version `checks` (the enforcing crate's own rules
    /// beyond the policy file): the policy's rules and those, or `off` when nothing
    /// is checked. A document stored under the same answer needs no second look
    /// before it is served.
    pub fn conformance(&self, checks: u32) -> String {
        match self.mode {
            WhitelistMode::Off => "off".to_owned(),
            // Strip and reject both leave only conforming content.
            WhitelistMode::Strip | WhitelistMode::Reject => match self.profile.is_identity() {
                true => format!("guard{checks}:{}", self.policy.fingerprint()),
                false => format!(
                    "guard{checks}:{}:{}",
                    self.profile.fingerprint(),
                    self.policy.fingerprint()
                ),
            },
        }
    }

    /// Whether the guard takes yrs' deep events (reject mode, to undo a refused update
    /// precisely). Their cost grows with the number of existing nodes a transaction
    /// edits times the body's length, so an external change then replaces changed
    /// paragraphs past a bound instead of editing every one in place; in strip and
    /// off mode it edits them all in place.
    pub fn takes_deep_events(&self) -> bool {
        self.mode == WhitelistMode::Reject
    }

    /// Clean rendered HTML, unless the whitelist is off.
    pub fn clean_html(&self, html: &str) -> String {
        match self.mode {
            WhitelistMode::Off => html.to_owned(),
            _ => self.html.clean(html),
        }
    }

    /// Clean a host's HTML on its way into a document, unless the whitelist is off:
    /// one pass of the cleaner ([`HtmlCleaner::clean_once`]), since
    /// the import parses the result and this guard judges every node it makes. Half
    /// the cost of [`Whitelist::clean_html`], whose fixed point is for HTML that
    /// leaves the service.
    pub fn clean_html_for_import(&self, html: &str) -> String {
        match self.mode {
            WhitelistMode::Off => html.to_owned(),
            _ => self.html.clean_once(html),
        }
    }
}

impl Default for Whitelist {
    /// The default policy in strip mode.
    fn default() -> Self {
        static DEFAULT: OnceLock<Whitelist> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                Whitelist::new(Arc::new(Policy::default_policy()), WhitelistMode::Strip)
            })
            .clone()
    }
}
