//! The backend without persistence: a change is done once the view has applied it.

use std::sync::Arc;

use super::Change;
use super::backend::{Backend, Commit, Discard};
use super::view::View;

/// No persistence: a change is done once the view has applied it, and gone with the process.
pub struct Memory {
    view: Arc<View>,
}

impl Memory {
    pub fn new(view: Arc<View>) -> Self {
        Memory { view }
    }
}

impl Backend for Memory {
    fn commit(&self, change: Change) -> Commit<'_> {
        let result = self.view.apply(change, &mut Discard);
        Box::pin(std::future::ready(result))
    }
}
