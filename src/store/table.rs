//! Typed handles to the services' tables.
//!
//! A table is a name and the type of its values: `const ORDERS:
//! Table<Order> = Table::new("orders")`. Handles are plain constants, so
//! the fold functions that a service runs inside a write can name its
//! tables without carrying storage handles around, and a value can only be
//! read back as the type it was written as. The store resolves the name to
//! its storage (a sled tree) on first use.

use std::marker::PhantomData;

/// A table of `V`s, by byte key.
pub struct Table<V> {
    name: &'static str,
    /// `fn() -> V`: the handle neither owns a `V` nor limits `Send`/`Sync`.
    _value: PhantomData<fn() -> V>,
}

impl<V> Table<V> {
    pub const fn new(name: &'static str) -> Table<V> {
        Table { name, _value: PhantomData }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Table<V> {}

impl<V> std::fmt::Debug for Table<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({})", self.name)
    }
}
