//! Operator (non-keyed) state of one shard, for user functions, sources and sinks
//! (Flink's `OperatorStateStore` with `CheckpointedFunction`): named lists of byte
//! items. On restore onto another shard count, a **list** state's items are dealt out
//! evenly (each item to one shard), a **union** state's items go to every shard
//! (`formats::operator_state`). Names starting with `_` are the runtime's own.
use formats::operator_state::{Mode, OperatorState};

/// The operator states a function fills at a checkpoint, or finds on restore.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorStates {
    states: Vec<OperatorState>,
}

impl OperatorStates {
    pub(crate) fn from_states(states: Vec<OperatorState>) -> Self {
        OperatorStates { states }
    }

    pub(crate) fn into_states(self) -> Vec<OperatorState> {
        self.states
    }

    /// The list state `name` (created empty): each item goes to one shard on restore.
    pub fn list(&mut self, name: &str) -> &mut Vec<Vec<u8>> {
        self.get_or_create(name, Mode::List)
    }

    /// The union list state `name` (created empty): every shard gets every item on
    /// restore.
    pub fn union(&mut self, name: &str) -> &mut Vec<Vec<u8>> {
        self.get_or_create(name, Mode::Union)
    }

    /// The items of state `name` (empty when there is none), whatever its mode.
    pub fn items(&self, name: &str) -> &[Vec<u8>] {
        self.states.iter().find(|s| s.name == name).map_or(&[], |s| &s.items)
    }

    fn get_or_create(&mut self, name: &str, mode: Mode) -> &mut Vec<Vec<u8>> {
        if !self.states.iter().any(|s| s.name == name) {
            self.states.push(OperatorState { name: name.to_owned(), mode, items: Vec::new() });
        }
        let state = self.states.iter_mut().find(|s| s.name == name).expect("present: pushed above when missing");
        // A name keeps the mode it was last asked for within one snapshot.
        state.mode = mode;
        &mut state.items
    }
}
