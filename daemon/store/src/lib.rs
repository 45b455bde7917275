//! hearth's store: applications, functions, immutable versions with their
//! files, releases and aliases.

mod sqlite;

pub use sqlite::*;
