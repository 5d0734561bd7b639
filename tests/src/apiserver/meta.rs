//! The ObjectMeta fields the server owns, in one table: what a create and
//! an update do with a client's value, which are immutable, and which are
//! identity rather than fields of an object (managed fields, patches).

/// What a write does with a client's value of a system field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUpdate {
    /// Set once by the server; an update keeps the stored value (and
    /// validation calls a change immutable).
    Kept,
    /// Counted by the server from the stored value (`generation`).
    Counted,
    /// A precondition: an update sends the value it read.
    Precondition,
    /// Computed anew by the write (`managedFields`).
    Recomputed,
    /// Never stored (`selfLink`).
    Cleared,
}

/// ObjectMeta fields the server sets: a create drops the client's values,
/// an update treats them as [`OnUpdate`] says (kube-apiserver's
/// `rest.FillObjectMetaSystemFields` and `ValidateObjectMetaUpdate`).
pub const SYSTEM_FIELDS: &[(&str, OnUpdate)] = &[
    ("uid", OnUpdate::Kept),
    ("resourceVersion", OnUpdate::Precondition),
    ("generation", OnUpdate::Counted),
    ("creationTimestamp", OnUpdate::Kept),
    ("deletionTimestamp", OnUpdate::Kept),
    ("deletionGracePeriodSeconds", OnUpdate::Kept),
    ("managedFields", OnUpdate::Recomputed),
    ("selfLink", OnUpdate::Cleared),
];

/// The ObjectMeta fields that name an object (set by the URL or the
/// request, never owned by a field manager).
pub const NAMING_FIELDS: &[&str] = &["name", "namespace", "generateName"];

/// The system fields an update keeps from the stored object.
pub fn kept() -> impl Iterator<Item = &'static str> {
    SYSTEM_FIELDS.iter().filter(|(_, u)| *u == OnUpdate::Kept).map(|(f, _)| *f)
}

/// Whether a field path (as its first two segments) identifies an object
/// rather than being a field of it: `apiVersion`, `kind`, the naming and
/// the system fields of `metadata`.
pub fn is_identity(first: Option<&str>, second: Option<&str>) -> bool {
    match (first, second) {
        (Some("apiVersion" | "kind"), _) => true,
        (Some("metadata"), Some(f)) => {
            NAMING_FIELDS.contains(&f) || SYSTEM_FIELDS.iter().any(|(s, _)| *s == f)
        }
        _ => false,
    }
}
