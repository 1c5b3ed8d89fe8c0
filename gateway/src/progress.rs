//! Progress of long operations (consent import, ledger verify, audit export), reported through a small
//! trait so that the library never depends on how a command shows it (a bar, a log line, nothing).

/// Told how far a long operation has got, in items (consents, log entries, decision records).
///
/// Closures `Fn(u64)` implement it, called with the items just done, so a caller that only counts
/// need not name a type.
pub trait Progress: Send + Sync {
    /// The number of items the operation will handle, once it knows.
    fn total(&self, _items: u64) {}
    /// `items` more were handled.
    fn advance(&self, items: u64);
}

/// Reports to nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn advance(&self, _items: u64) {}
}

impl<F: Fn(u64) + Send + Sync> Progress for F {
    fn advance(&self, items: u64) {
        self(items)
    }
}
