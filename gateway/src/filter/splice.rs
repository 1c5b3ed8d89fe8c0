//! Building an edited copy of a body from a few replaced spans, copying nothing until the first edit.

/// Accumulates replacements of non-overlapping spans of `body`, in increasing order.
#[derive(Debug)]
pub struct Splice<'a> {
    body: &'a [u8],
    out: Option<Vec<u8>>,
    copied: usize,
}

impl<'a> Splice<'a> {
    /// Starts with nothing replaced.
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            out: None,
            copied: 0,
        }
    }

    /// Where the next replacement may start: the end of the last one.
    pub fn position(&self) -> usize {
        self.copied
    }

    /// Replaces `body[start..end]` with `with`; `start` must not be before [`Self::position`].
    pub fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let body = self.body;
        let buf = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(body.len() + 64));
        buf.extend_from_slice(&body[self.copied..start]);
        buf.extend_from_slice(with);
        self.copied = end;
    }

    /// The edited body, or `None` when nothing was replaced.
    pub fn finish(self) -> Option<Vec<u8>> {
        let body = self.body;
        let copied = self.copied;
        self.out.map(|mut buf| {
            buf.extend_from_slice(&body[copied..]);
            buf
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices() {
        let mut s = Splice::new(b"abcdef");
        s.replace(1, 3, b"XYZ");
        s.replace(4, 5, b"");
        assert_eq!(s.finish().unwrap(), b"aXYZdf");
        assert_eq!(Splice::new(b"abc").finish(), None);
    }
}
