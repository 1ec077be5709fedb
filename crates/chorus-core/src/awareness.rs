//! Awareness (presence) states of one room, with the owner of each client id.
//!
//! Only the connection that introduced a client id may change it (a later
//! connection of the *same user* takes it over, which is what a reconnecting tab
//! looks like before the server has noticed the old socket is dead). Removed
//! states are forgotten at once: a removal is final for a connection that left.

use crate::room::ConnId;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct AwarenessState {
    pub clock: u64,
    /// The stamped JSON text, shared with every frame that carries it.
    pub json: Arc<str>,
    pub owner: ConnId,
}

#[derive(Default)]
pub(crate) struct AwarenessStates {
    states: HashMap<u64, AwarenessState>,
}

impl AwarenessStates {
    pub fn get(&self, client_id: u64) -> Option<&AwarenessState> {
        self.states.get(&client_id)
    }

    pub fn set(&mut self, client_id: u64, state: AwarenessState) {
        self.states.insert(client_id, state);
    }

    pub fn remove(&mut self, client_id: u64) -> Option<AwarenessState> {
        self.states.remove(&client_id)
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &AwarenessState)> {
        self.states.iter().map(|(k, v)| (*k, v))
    }
}
