//! What a transaction block does to session variables, and how it is
//! undone — PostgreSQL's rules:
//!
//! * `SET` inside a block lasts beyond it if the block commits, and is
//!   undone if the block rolls back (or the savepoint it followed is
//!   rolled back to).
//! * `SET LOCAL` lasts until the block ends, either way; a `SET` of the
//!   same variable later in the block is what remains after a commit.
//!
//! [`BlockSettings`] keeps an undo log of every change made in the open
//! block (the variable, its value before, and what it was to return to at
//! commit), and the value each `SET LOCAL` variable returns to at commit.
//! Outside a block the session applies `SET` directly and ignores `SET
//! LOCAL`.

use std::collections::BTreeMap;

use crate::vars::Vars;

/// One change to undo.
#[derive(Debug)]
struct Undo {
    name: String,
    before: String,
    /// The variable's entry in `at_commit` before the change.
    at_commit_before: Option<String>,
}

/// The open block's changes to session variables (module docs).
#[derive(Debug, Default)]
pub struct BlockSettings {
    undo: Vec<Undo>,
    /// Variables set with `SET LOCAL` → the value they take at commit.
    at_commit: BTreeMap<String, String>,
}

impl BlockSettings {
    /// Records that `name` (canonical) changes from `before` to `after`,
    /// by `SET LOCAL` if `local`.
    pub fn record(&mut self, name: &str, before: &str, after: &str, local: bool) {
        self.undo.push(Undo {
            name: name.to_string(),
            before: before.to_string(),
            at_commit_before: self.at_commit.get(name).cloned(),
        });
        if local {
            self.at_commit
                .entry(name.to_string())
                .or_insert_with(|| before.to_string());
        } else if let Some(value) = self.at_commit.get_mut(name) {
            *value = after.to_string();
        }
    }

    /// A position to roll back to ([`BlockSettings::roll_back_to`]).
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Undoes every change made since `mark`.
    pub fn roll_back_to(&mut self, mark: usize, vars: &mut Vars) {
        while self.undo.len() > mark {
            let Some(undo) = self.undo.pop() else { break };
            restore(vars, &undo.name, &undo.before);
            match undo.at_commit_before {
                Some(value) => self.at_commit.insert(undo.name, value),
                None => self.at_commit.remove(&undo.name),
            };
        }
    }

    /// The block ended: a commit keeps its `SET`s and drops its `SET
    /// LOCAL`s; a rollback undoes everything.
    pub fn end(&mut self, committed: bool, vars: &mut Vars) {
        if committed {
            for (name, value) in std::mem::take(&mut self.at_commit) {
                restore(vars, &name, &value);
            }
            self.undo.clear();
        } else {
            self.roll_back_to(0, vars);
        }
    }
}

/// Sets `name` back to a value it held before (valid then, valid now).
fn restore(vars: &mut Vars, name: &str, value: &str) {
    if let Err(e) = vars.set(name, value) {
        tracing::error!(error = %e, name, "cannot restore a session variable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(vars: &Vars) -> String {
        vars.get("application_name").unwrap_or_default().to_string()
    }

    /// Sets application_name as the session would inside a block.
    fn set(block: &mut BlockSettings, vars: &mut Vars, value: &str, local: bool) {
        let before = name(vars);
        block.record("application_name", &before, value, local);
        vars.set("application_name", value).unwrap_or_default();
    }

    #[test]
    fn commit_keeps_set_and_drops_set_local() {
        let mut vars = Vars::default();
        let mut block = BlockSettings::default();
        set(&mut block, &mut vars, "local", true);
        assert_eq!(name(&vars), "local");
        block.end(true, &mut vars);
        assert_eq!(name(&vars), "");
        set(&mut block, &mut vars, "kept", false);
        block.end(true, &mut vars);
        assert_eq!(name(&vars), "kept");
        // A SET after a SET LOCAL of the same variable is what remains.
        set(&mut block, &mut vars, "local", true);
        set(&mut block, &mut vars, "later", false);
        set(&mut block, &mut vars, "local again", true);
        block.end(true, &mut vars);
        assert_eq!(name(&vars), "later");
    }

    #[test]
    fn rollback_undoes_everything_and_savepoints_undo_what_followed() {
        let mut vars = Vars::default();
        let mut block = BlockSettings::default();
        set(&mut block, &mut vars, "one", false);
        let mark = block.mark();
        set(&mut block, &mut vars, "two", false);
        set(&mut block, &mut vars, "three", true);
        block.roll_back_to(mark, &mut vars);
        assert_eq!(name(&vars), "one");
        block.end(true, &mut vars);
        assert_eq!(name(&vars), "one");
        set(&mut block, &mut vars, "gone", false);
        block.end(false, &mut vars);
        assert_eq!(name(&vars), "one");
    }
}
