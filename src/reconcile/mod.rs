//! The reconcile layer: the one pass that loads the manifest, reads the live state, plans,
//! checks the guards and applies; and `validate --online`.

pub mod load;
pub mod online;
