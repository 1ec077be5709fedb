//! The names of the two roots every Chorus document has (`DESIGN.md`, "Document
//! model"): the room creates them, the renderer and the importer read them. A leaf,
//! so that none of those needs another to know a name.

/// The names of the two roots every Chorus document has.
pub const ROOT_TITLE: &str = "title";

/// See [`ROOT_TITLE`]. The body's fragment under the default (`html`) editor
/// profile; another profile names its own (`EditorProfile::fragment`).
pub const ROOT_BODY: &str = "body";
