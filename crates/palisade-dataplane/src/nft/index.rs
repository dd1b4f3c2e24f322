//! What a ruleset keeps besides the table, to be patched and to name sets: the engine it was built
//! for, each class's chains, who uses each chain and set, and the sets by content and stable key.

use foldhash::HashMap;
use palisade_model::IdVec;
use palisade_policy::{Class, PerDirection};
use std::sync::Arc;

/// A class's chains (`None` where it is not isolated).
pub(crate) type ClassChains = PerDirection<Option<Arc<str>>>;

/// What a ruleset keeps to be patched (not part of the table): the engine and audit mode it was
/// built for, the chains of each of that engine's classes, and its chains' and sets' users.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    /// The compiled table (its id) the ruleset was built for.
    pub built_for: Option<u64>,
    /// Per class of that table: its chains; `None` for a class without addresses.
    pub class_chains: IdVec<Class, Option<ClassChains>>,
    /// Chain → map elements that jump to it.
    pub chain_users: HashMap<String, u32>,
    /// Set → rules that look it up.
    pub set_users: HashMap<String, u32>,
    /// Set names by [`content_hash`].
    pub set_by_content: HashMap<u64, Vec<String>>,
    /// A set by stable key (one of them, where several have the key).
    pub set_by_key: HashMap<String, String>,
}

impl Index {
    /// Drops set `name`, whose content hashes to `hash`, from the content index.
    pub fn forget_content(&mut self, name: &str, hash: u64) {
        if let Some(names) = self.set_by_content.get_mut(&hash) {
            names.retain(|n| n != name);
            if names.is_empty() {
                self.set_by_content.remove(&hash);
            }
        }
    }
}
